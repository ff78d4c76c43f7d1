"""Comparing a conversion with the prompt the editor queued (publisher.prompt_compare), on fixtures whose editor
prompt was recorded from the real frontend (`<name>.frontend.json`, written by tests/browser/test_frontend_oracle)."""

from __future__ import annotations

import copy

import pytest

from publisher import NodeCatalog, convert_ui_workflow
from publisher.frontend_values import finish_for_run
from publisher.prompt_compare import prompt_differences

from .helpers import fixture_json

RECORDED = ["ui_rounding_and_replacements", "ui_subgraphs_nested", "ui_group_node_with_seed",
            "ui_group_node_dynamic_prompts"]


@pytest.mark.parametrize("name", RECORDED)
def test_a_faithful_conversion_has_no_differences(catalog: NodeCatalog, name: str) -> None:
    # ui_rounding_and_replacements has a %date:…% prefix: filled in as the editor does when it queues.
    ours = convert_ui_workflow(fixture_json(f"{name}.json"), catalog)
    assert prompt_differences(ours, fixture_json(f"{name}.frontend.json"), catalog) == []


def test_texts_each_run_makes_are_not_differences(catalog: NodeCatalog) -> None:
    # The editor picked its own {a|b} choices and dates when it queued: any pick is as faithful as another.
    ours = convert_ui_workflow(fixture_json("ui_dynamic_prompts.json"), catalog)
    picked, made = finish_for_run(ours, catalog, (), choose=lambda count: count - 1)
    assert made  # the fixture has texts made per run
    theirs = {node_id: {k: copy.deepcopy(v) for k, v in node.items() if k != "_meta"}
              for node_id, node in picked.items()}
    assert prompt_differences(ours, theirs, catalog) == []
    fixed_node = next(node_id for node_id, node in ours.items() if not node["_meta"].get("per_run")
                      and "text" in node["inputs"])
    theirs[fixed_node]["inputs"]["text"] += " changed"
    assert [f.split(":")[0] for f in prompt_differences(ours, theirs, catalog)] == [
        f"node {fixed_node} (CLIPTextEncode) input 'text'"]


def test_each_difference_names_the_node_the_input_and_both_values(catalog: NodeCatalog) -> None:
    ours = convert_ui_workflow(fixture_json("ui_rounding_and_replacements.json"), catalog)
    theirs = copy.deepcopy(fixture_json("ui_rounding_and_replacements.frontend.json"))
    sampler = next(node_id for node_id, node in theirs.items() if node["class_type"] == "KSampler")
    theirs[sampler]["inputs"]["cfg"] = 99.5
    theirs["999"] = {"class_type": "PreviewImage", "inputs": {}}
    found = prompt_differences(ours, theirs, catalog)
    assert found[0] == "only the editor queues node 999"
    assert len(found) == 2
    assert found[1].startswith(f"node {sampler} (KSampler) input 'cfg': ") and found[1].endswith(
        "here, 99.5 in the editor")


def test_inputs_the_engine_does_not_take_are_not_differences(catalog: NodeCatalog) -> None:
    ours = convert_ui_workflow(fixture_json("ui_rounding_and_replacements.json"), catalog)
    theirs = copy.deepcopy(fixture_json("ui_rounding_and_replacements.frontend.json"))
    for node in theirs.values():
        node["inputs"]["preview"] = "frontend-only widget"
    assert prompt_differences(ours, theirs, catalog) == []
