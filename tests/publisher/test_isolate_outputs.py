"""Per-run output folders: every filename_prefix moves under runs/<run id>/."""

from __future__ import annotations

import copy

import pytest

from publisher import NodeCatalog, check_run_id, isolate_outputs, load_workflow, run_folder
from tests.publisher.helpers import fixture_workflow, shipped_workflow


def test_save_prefix_moves_into_the_run_folder(catalog: NodeCatalog) -> None:
    wf = shipped_workflow("txt2img_sd15.json")
    prompt = wf.to_prompt()
    before = copy.deepcopy(prompt)
    isolated = isolate_outputs(prompt, catalog, "run_01-ab")
    assert isolated["9"]["inputs"]["filename_prefix"] == "runs/run_01-ab/ComfyUI"
    assert prompt == before  # the input is copied, not changed
    # only filename_prefix changes
    isolated["9"]["inputs"]["filename_prefix"] = "ComfyUI"
    assert isolated == before


def test_accepts_a_workflow_and_keeps_subfolders(catalog: NodeCatalog) -> None:
    wf = load_workflow(
        {
            "1": {
                "class_type": "EmptyImage",
                "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
            },
            "2": {
                "class_type": "SaveImage",
                "inputs": {"images": ["1", 0], "filename_prefix": "portraits/%date:yyyy%"},
            },
            "3": {
                "class_type": "SaveAnimatedWEBP",
                "inputs": {"images": ["1", 0], "filename_prefix": "/abs"},
            },
            "4": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": ""}},
            "5": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
        }
    )
    isolated = isolate_outputs(wf, catalog, "r1")
    assert isolated["2"]["inputs"]["filename_prefix"] == "runs/r1/portraits/%date:yyyy%"
    assert isolated["3"]["inputs"]["filename_prefix"] == "runs/r1/abs"
    assert isolated["4"]["inputs"]["filename_prefix"] == "runs/r1/ComfyUI"
    assert "filename_prefix" not in isolated["5"]["inputs"]
    assert wf.inputs("2")["filename_prefix"] == "portraits/%date:yyyy%"


def test_a_linked_prefix_is_confined_on_the_engine_and_other_inputs_are_left_alone(catalog: NodeCatalog) -> None:
    wf = load_workflow(
        {
            "1": {"class_type": "PrimitiveString", "inputs": {"value": "from-a-node"}},
            "2": {
                "class_type": "EmptyImage",
                "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
            },
            "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": ["1", 0]}},
        }
    )
    isolated = isolate_outputs(wf, catalog, "r2")
    assert isolated["3"]["inputs"]["filename_prefix"] == ["3:prefix-in-run-folder", 0]
    assert isolated["3:prefix-in-run-folder"]["inputs"] == {"string_a": "runs/r2/", "string_b": ["3:prefix-cleaned", 0],
                                                            "delimiter": ""}
    assert isolated["3:prefix-cleaned"]["inputs"]["string"] == ["1", 0]
    assert isolated["1"]["inputs"]["value"] == "from-a-node"


def test_unknown_save_nodes_with_a_prefix_are_isolated(catalog: NodeCatalog) -> None:
    wf = fixture_workflow("custom_nodes.json").to_prompt()
    wf["11"]["inputs"]["filename_prefix"] = "ext"
    isolated = isolate_outputs(wf, catalog, "r3")
    assert isolated["11"]["inputs"]["filename_prefix"] == "runs/r3/ext"
    assert isolated["11"]["inputs"]["output_path"] == "[time(%Y-%m-%d)]"


def test_run_folder() -> None:
    assert run_folder("abc-123_X") == "runs/abc-123_X"


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "a.b", "run id", "é", "a" * 129, "x\n"])
def test_run_ids_are_restricted(catalog: NodeCatalog, bad: str) -> None:
    with pytest.raises(ValueError) as info:
        isolate_outputs({}, catalog, bad)
    assert str(info.value) == f"run id must be 1-128 characters of A-Z, a-z, 0-9, '_' or '-', got {bad!r}"
    with pytest.raises(ValueError):
        check_run_id(bad)
