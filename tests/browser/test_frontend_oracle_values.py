"""The official frontend (1.32.9, in headless chromium) is the oracle for the values the editor makes when it queues:
dynamic prompts (Comfy.DynamicPrompts) and a PrimitiveNode's "Run widget replace on values". What is fixed must be
what the converter writes; what changes per run (a random choice, a date) must be one of the texts a run can make,
and every choice must be reachable on both sides."""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any

import pytest

from publisher import NodeCatalog, convert_ui_workflow
from publisher.dynamic_prompts import dynamic_prompt, fixed_prompt
from publisher.frontend_values import finish_for_run, replace_dates
from tests.browser.test_frontend_oracle import FIXTURES, catalog, differences, editor, frontend_prompt  # noqa: F401

pytest.importorskip("playwright")

DYNAMIC = "ui_dynamic_prompts.json"  # texts with comments, escapes and choices, on plain and subgraph nodes
GROUP = "ui_group_node_dynamic_prompts.json"  # a legacy group node showing its inner CLIPTextEncode's text
RUNS = 300  # queueings per side: the rarest text of the fixture comes once in 12

_QUEUE_MANY = """async ([workflow, times]) => {
    await window.app.loadGraphData(workflow, true, true, null);
    const texts = [];
    for (let i = 0; i < times; i++) {
        const { output } = await window.app.graphToPrompt();
        texts.push(Object.fromEntries(Object.entries(output).map(([id, node]) => [id, node.inputs.text])));
    }
    return texts;
}"""


def outcomes(text: str) -> set[str]:
    """Every text `dynamic_prompt` can make of `text`: each sequence of choices, followed in turn."""
    found, pending = set(), [()]
    while pending:
        found.add(dynamic_prompt(text, _Follow(pending.pop(), pending)))
    return found


class _Follow:
    """Picks the choices of `prefix`, then the first option, and leaves each other option's sequence in `pending`."""

    def __init__(self, prefix: tuple[int, ...], pending: list[tuple[int, ...]]) -> None:
        self.prefix, self.pending = prefix, pending
        self.made: list[int] = []

    def __call__(self, count: int) -> int:
        at = len(self.made)
        if at >= len(self.prefix):
            self.pending.extend((*self.made, other) for other in range(1, count))
        self.made.append(self.prefix[at] if at < len(self.prefix) else 0)
        return self.made[-1]


def _fixture() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / DYNAMIC).read_text())
    return data


def test_fixed_texts_are_what_the_frontend_queues(editor: Any, catalog: NodeCatalog) -> None:  # noqa: F811
    workflow = _fixture()
    ours = convert_ui_workflow(workflow, catalog)
    theirs = frontend_prompt(editor, workflow)
    per_run = {node_id for node_id, node in ours.items() if node["_meta"].get("per_run")}
    assert per_run == {"3", "7"}  # a choice; a date (and a choice) from a primitive that replaces
    fixed = {node_id: node for node_id, node in ours.items() if node_id not in per_run}
    theirs_fixed = {node_id: node for node_id, node in theirs.items() if node_id not in per_run}
    assert differences(fixed, theirs_fixed, catalog) == []
    stored = FIXTURES / DYNAMIC.replace(".json", ".frontend.json")  # for the tests that run without a browser
    if os.environ.get("FRONTEND_ORACLE_WRITE") == "1":
        stored.write_text(json.dumps(theirs_fixed, indent=1, sort_keys=True) + "\n")
    assert json.loads(stored.read_text()) == theirs_fixed
    # what the fixture is there to show, as the frontend queued it
    assert "//" not in theirs["2"]["inputs"]["text"] and theirs["2"]["inputs"]["text"].endswith("\\undefined")
    assert theirs["5"]["inputs"]["text"].startswith("a photo ")  # %Deterministic.text% replaced, then processed
    assert theirs["9"]["inputs"]["text"] == "%Sampler.steps% stays\n"  # replacing is off: only processed
    assert theirs["20:1"]["inputs"]["text"] == "promoted\n// as it is {x|y}"  # an instance's widget: as it is
    assert theirs["20:2"]["inputs"]["text"] == "inner "  # an inner node's own widget: processed


def test_a_group_nodes_own_widget_is_processed_unlike_a_subgraphs(editor: Any, catalog: NodeCatalog) -> None:  # noqa: F811
    workflow = json.loads((FIXTURES / GROUP).read_text())
    theirs = frontend_prompt(editor, workflow)
    assert theirs["3:0"]["inputs"]["text"] == "group's own \n{kept}"  # a legacy group node's widget is its own
    assert differences(convert_ui_workflow(workflow, catalog), theirs, catalog) == []
    stored = FIXTURES / GROUP.replace(".json", ".frontend.json")
    if os.environ.get("FRONTEND_ORACLE_WRITE") == "1":
        stored.write_text(json.dumps(theirs, indent=1, sort_keys=True) + "\n")
    assert json.loads(stored.read_text()) == theirs


_QUEUE_TEXTS = """async ([workflow, texts]) => {
    const queued = [];
    for (const text of texts) {
        workflow.nodes[0].widgets_values = [text];
        await window.app.loadGraphData(workflow, true, true, null);
        const { output } = await window.app.graphToPrompt();
        queued.push(output[String(workflow.nodes[0].id)].inputs.text);
    }
    return queued;
}"""
FIXED_TEXTS = ["a cat // on a mat\nin a hat", "a /* not\nthis */cat", "http://example.com/x", "\\{lit\\} \\| bar",
               "keep \\(weight\\) and \\n", "{only one}", "{a{b}c}", "ends with \\", "a // b\r\nc\u2028d // e",
               "/* open comment a|b", "x */ y", "\\\\{one}"]


def test_fixed_texts_are_queued_as_the_frontend_does(editor: Any, catalog: NodeCatalog) -> None:  # noqa: F811
    workflow = _fixture()
    assert workflow["nodes"][0]["type"] == "CLIPTextEncode"
    queued = editor.evaluate(_QUEUE_TEXTS, [workflow, FIXED_TEXTS])
    ours = []
    for text in FIXED_TEXTS:
        workflow["nodes"][0]["widgets_values"] = [text]
        ours.append(convert_ui_workflow(workflow, catalog)["2"]["inputs"]["text"])
    assert ours == queued
    assert [fixed_prompt(text) for text in FIXED_TEXTS if "\r" not in text] == [
        text for text, given in zip(queued, FIXED_TEXTS, strict=True) if "\r" not in given]  # the port alone


def test_every_choice_is_reachable_and_nothing_else(editor: Any, catalog: NodeCatalog) -> None:  # noqa: F811
    workflow = _fixture()
    stored = convert_ui_workflow(workflow, catalog)
    before = datetime.now()
    theirs = editor.evaluate(_QUEUE_MANY, [workflow, RUNS])
    after = datetime.now()
    for node_id in ("3", "7"):
        possible = _possible(stored[node_id], before) | _possible(stored[node_id], after)  # either side of midnight
        frontend = {texts[node_id] for texts in theirs}
        ours = {finish_for_run(stored, catalog, (), moment=after)[1][(node_id, "text")] for _ in range(RUNS)}
        assert frontend <= possible and ours <= possible, (frontend - possible, ours - possible)
        assert len(frontend) == len(ours) == len(_possible(stored[node_id], after)) > 1  # every choice, both sides


def _possible(node: dict[str, Any], moment: datetime) -> set[str]:
    """The texts a run at `moment` can make of a node's text: its dates filled in, then each choice."""
    text = node["inputs"]["text"]
    return outcomes(replace_dates(text, moment) if "dates" in node["_meta"]["per_run"]["text"] else text)
