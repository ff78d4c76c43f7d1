"""The official frontend (served by the bundled engine, in headless chromium) is the oracle for the UI-format
converter: its own ``app.graphToPrompt()`` and ``convert_ui_workflow`` must queue the same prompt."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from publisher import NodeCatalog, WorkflowFormatError, convert_ui_workflow
from publisher.frontend_values import apply_run_replacements, primitive_value
from tests.support.paths import ENGINE_HOME

pytest.importorskip("playwright")
from tests.support.browser import CHROMIUM, chromium

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs /usr/bin/chromium (make test installs it)")
FIXTURES = Path(__file__).resolve().parents[1] / "publisher" / "fixtures"

_LOAD_AND_CONVERT = """async (workflow) => {
    await window.app.loadGraphData(workflow, true, true, null);
    const { output } = await window.app.graphToPrompt();
    return output;
}"""


def subgraph_templates() -> list[Path]:
    pattern = "*/venv/lib/python*/site-packages/comfyui_workflow_templates*/templates/*.json"
    return [p for p in sorted(ENGINE_HOME.glob(pattern)) if '"subgraphs"' in p.read_text()]


@pytest.fixture(scope="module")
def catalog(object_info: dict[str, Any]) -> NodeCatalog:
    return NodeCatalog.from_object_info(object_info)


@pytest.fixture(scope="module")
def editor(engine_url: str) -> Iterator[Any]:
    with chromium() as context:
        page = context.new_page()
        page.goto(engine_url)
        page.wait_for_function("window.app && window.app.graph && window.app.vueAppReady !== false", timeout=120_000)
        yield page


def frontend_prompt(editor: Any, workflow: dict[str, Any]) -> dict[str, Any]:
    output: dict[str, Any] = editor.evaluate(_LOAD_AND_CONVERT, workflow)
    return output


def differences(ours: dict[str, Any], theirs: dict[str, Any], catalog: NodeCatalog) -> list[str]:
    """What differs, ignoring inputs the engine does not have (frontend-only widgets such as 'preview')."""
    found = [f"only the frontend queues node {nid}" for nid in sorted(set(theirs) - set(ours))]
    found += [f"only we queue node {nid}" for nid in sorted(set(ours) - set(theirs))]
    for nid in sorted(set(ours) & set(theirs)):
        mine, real = ours[nid], theirs[nid]
        if mine["class_type"] != real["class_type"]:
            found.append(f"node {nid}: class {mine['class_type']} != {real['class_type']}")
            continue
        schema = catalog.get(real["class_type"])
        known = {spec.name for spec in schema.inputs} if schema is not None else set(real["inputs"])
        real_inputs = {k: v for k, v in real["inputs"].items() if k in known}
        mine_inputs = {k: v for k, v in mine["inputs"].items() if k in known}
        for name in sorted(set(real_inputs) | set(mine_inputs)):
            if real_inputs.get(name, "<absent>") != mine_inputs.get(name, "<absent>"):
                found.append(f"node {nid} input {name}: ours {str(mine_inputs.get(name, '<absent>'))[:60]} "
                             f"!= frontend {str(real_inputs.get(name, '<absent>'))[:60]}")
    return found


def test_subgraph_templates_convert_as_the_frontend_does(editor: Any, catalog: NodeCatalog) -> None:
    templates = subgraph_templates()
    assert len(templates) >= 15
    tally: dict[str, list[str]] = {"identical": [], "differs": [], "refused": []}
    for path in templates:
        workflow = json.loads(path.read_text())
        theirs = frontend_prompt(editor, workflow)
        assert any(":" in node_id for node_id in theirs), path.name  # the frontend expanded a subgraph
        try:
            ours = convert_ui_workflow(workflow, catalog)
        except WorkflowFormatError as exc:
            tally["refused"].append(f"{path.name}: {str(exc)[:300]}")
            continue
        found = differences(ours, theirs, catalog)
        tally["differs" if found else "identical"].append(f"{path.name}: {found[:3]}" if found else path.name)
    print(json.dumps(tally, indent=1))
    assert not tally["differs"], tally["differs"]


# Fixtures of our own (tests/publisher/fixtures), each with the prompt the frontend queued for it stored beside it
# (`<name>.frontend.json`, written by this test when FRONTEND_ORACLE_WRITE=1) for the tests that run without a browser.
UI_FIXTURES = ["ui_subgraphs_nested.json", "ui_subgraphs_nested_defined_late.json", "ui_group_node.json",
               "ui_group_node_old_naming.json", "ui_group_node_with_seed.json",
               "ui_subgraph_bypassed.json", "ui_rounding_and_replacements.json"]


@pytest.mark.parametrize("name", UI_FIXTURES)
def test_our_fixtures_convert_as_the_frontend_does(editor: Any, catalog: NodeCatalog, name: str) -> None:
    workflow = json.loads((FIXTURES / name).read_text())
    theirs = frontend_prompt(editor, workflow)
    stored = FIXTURES / name.replace(".json", ".frontend.json")
    if os.environ.get("FRONTEND_ORACLE_WRITE") == "1":
        stored.write_text(json.dumps(theirs, indent=1, sort_keys=True) + "\n")
    assert differences(convert_ui_workflow(workflow, catalog), theirs, catalog) == []
    assert json.loads(stored.read_text()) == theirs  # the stored copy is still what the frontend queues


def test_a_date_in_the_file_name_prefix_is_filled_in_as_the_frontend_does(editor: Any, catalog: NodeCatalog) -> None:
    # The frontend fills in %date:…% when it queues; we keep the token in the converted workflow and fill it in
    # per run (apply_run_replacements), which must give what the frontend gives at that moment.
    workflow = json.loads((FIXTURES / "ui_rounding_and_replacements.json").read_text())
    save = next(node for node in workflow["nodes"] if node["type"] == "SaveImage")
    save["widgets_values"] = ["%Folder.text%/%date:yyyy-MM-dd%_%date:yy.MM%_%width%"]
    before = apply_run_replacements(convert_ui_workflow(workflow, catalog))

    theirs = frontend_prompt(editor, workflow)

    after = apply_run_replacements(convert_ui_workflow(workflow, catalog))  # either side of midnight
    assert theirs["9"]["inputs"]["filename_prefix"] in {p["9"]["inputs"]["filename_prefix"] for p in (before, after)}
    assert theirs["9"]["inputs"]["filename_prefix"].endswith("_%date:yy.MM%_%width%")  # one dot: a node's widget


_WIDGET_CALLBACK = """([type, name, value]) => {
    const node = LiteGraph.createNode(type);
    const widget = node.widgets.find((w) => w.name === name);
    widget.value = value;
    widget.callback(widget.value);
    return widget.value;
}"""


@pytest.mark.parametrize(("node_type", "name", "value"), [
    ("KSampler", "denoise", 0.4999999999999999), ("KSampler", "denoise", 1.7), ("KSampler", "cfg", 7.55),
    ("KSampler", "cfg", 7.123456), ("KSampler", "steps", 20.5), ("KSampler", "steps", -2.5),
    ("EmptyLatentImage", "width", 516), ("EmptyLatentImage", "width", 13), ("LatentUpscaleBy", "scale_by", 1.3333),
    ("ImageBlur", "sigma", 0.123456), ("ImageScaleBy", "scale_by", 0.005),
])
def test_a_primitive_value_is_rounded_as_the_widget_callback_does(
        editor: Any, catalog: NodeCatalog, node_type: str, name: str, value: float) -> None:
    # A PrimitiveNode's applyToGraph passes its value through the target widget's callback: the real one is the oracle.
    spec = catalog[node_type].input(name)
    assert spec is not None
    assert primitive_value(spec, value) == editor.evaluate(_WIDGET_CALLBACK, [node_type, name, value])
