"""Loading API-format workflows and explaining what is wrong with anything else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from publisher import UI_FORMAT_MESSAGE, Workflow, WorkflowFormatError, detect_format, load_workflow
from tests.publisher.helpers import FIXTURES, WORKFLOWS, fixture_json

TXT2IMG = WORKFLOWS / "txt2img_sd15.json"


def test_load_from_path_text_bytes_and_dict_agree() -> None:
    text = TXT2IMG.read_text()
    from_path = load_workflow(TXT2IMG)
    assert isinstance(from_path, Workflow)
    assert load_workflow(text) == from_path
    assert load_workflow(text.encode()) == from_path
    assert load_workflow(json.loads(text)) == from_path
    assert load_workflow(str(TXT2IMG)) == from_path  # a str naming an existing file is read


def test_loaded_nodes_keep_class_inputs_and_titles() -> None:
    wf = load_workflow(TXT2IMG)
    assert wf.node_ids() == ["3", "4", "5", "6", "7", "8", "9"]
    assert wf.class_type("3") == "KSampler"
    assert wf.inputs("3")["positive"] == ["6", 0]
    assert wf.title("4") == "Load Checkpoint"
    assert wf.nodes["9"] == {
        "class_type": "SaveImage",
        "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]},
        "_meta": {"title": "Save Image"},
    }


def test_node_ids_sort_numerically_with_subgraph_ids() -> None:
    nodes = {i: {"class_type": "X", "inputs": {}} for i in ["10", "9", "2:1", "2", "10:3", "abc"]}
    assert load_workflow(nodes).node_ids() == ["2", "2:1", "9", "10", "10:3", "abc"]


def test_loading_copies_the_source_dict() -> None:
    source = fixture_json("lora.json")
    wf = load_workflow(source)
    source["3"]["inputs"]["steps"] = 99
    assert wf.inputs("3")["steps"] == 20
    copy = wf.to_prompt()
    copy["3"]["inputs"]["steps"] = 1
    assert wf.inputs("3")["steps"] == 20


def test_int_node_ids_in_links_and_keys_become_strings() -> None:
    wf = load_workflow(
        {1: {"class_type": "EmptyImage", "inputs": {}}, 2: {"class_type": "X", "inputs": {"a": [1, 0]}}}
    )
    assert wf.node_ids() == ["1", "2"]
    assert wf.inputs("2")["a"] == ["1", 0]


def test_prompt_request_body_is_unwrapped() -> None:
    body = {"prompt": fixture_json("lora.json"), "client_id": "abc", "extra_data": {}}
    assert detect_format(body) == "api"
    assert load_workflow(body) == load_workflow(FIXTURES / "lora.json")


def test_title_is_none_without_meta_or_blank() -> None:
    wf = load_workflow(
        {"1": {"class_type": "A", "inputs": {}}, "2": {"class_type": "B", "_meta": {"title": "  "}}}
    )
    assert wf.title("1") is None
    assert wf.title("2") is None
    assert wf.inputs("2") == {}  # a node without "inputs" gets an empty dict


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (fixture_json("lora.json"), "api"),
        (fixture_json("ui_format.json"), "ui"),
        ({"prompt": fixture_json("lora.json")}, "api"),
        ({"1": {"inputs": {}}}, "api"),
        ({"nodes": [], "links": []}, "ui"),
        ({}, "unknown"),
        ([], "unknown"),
        ("text", "unknown"),
        ({"a": 1}, "unknown"),
        ({"1": {"title": "x"}}, "unknown"),
    ],
)
def test_detect_format(data: object, expected: str) -> None:
    assert detect_format(data) == expected


def _error(source: object) -> str:
    with pytest.raises(WorkflowFormatError) as info:
        load_workflow(source)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    return str(info.value)


def test_the_api_only_loader_refuses_ui_format_and_says_where_it_converts() -> None:
    message = _error(FIXTURES / "ui_format.json")
    assert message == UI_FORMAT_MESSAGE
    assert message == (
        "This is a ComfyUI UI-format workflow (has 'nodes' and 'links'); converting it needs the engine's node "
        "schemas, which are not at hand here — publish it through the studio or the API (they convert it), or "
        "in ComfyUI use Workflow > Export (API) and upload that file"
    )


def test_invalid_json_reports_line_and_column() -> None:
    message = _error('{\n  "3": {"class_type": "KSampler",\n  }\n}')
    assert message.startswith(
        "Invalid JSON at line 3, column 3: Expecting property name enclosed in double quotes"
    )


def test_invalid_json_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"1": {"class_type": "A"}')
    assert _error(path).startswith("Invalid JSON at line 1, column 26: Expecting ',' delimiter")


def test_empty_text_and_non_utf8_bytes() -> None:
    assert (
        _error("   ")
        == "The workflow file is empty; in ComfyUI use Workflow > Export (API) and upload that file"
    )
    assert _error(b"\xff\xfe{}").startswith("The workflow file is not UTF-8 text (bad byte at offset 0)")


def test_not_an_object() -> None:
    assert _error("[1, 2]") == (
        "A workflow must be a JSON object mapping node ids to nodes, got an array; "
        "in ComfyUI use Workflow > Export (API) and upload that file"
    )
    assert _error('"hello"').startswith(
        "A workflow must be a JSON object mapping node ids to nodes, got a string"
    )


def test_empty_workflow() -> None:
    assert (
        _error("{}")
        == "The workflow has no nodes; in ComfyUI use Workflow > Export (API) and upload that file"
    )


def test_unrecognised_object() -> None:
    assert _error({"name": "my workflow", "version": 2}).startswith(
        "This JSON is not a ComfyUI workflow: expected an API-format export"
    )


def test_node_without_class_type_is_named() -> None:
    message = _error({"3": {"class_type": "KSampler", "inputs": {}}, "7": {"inputs": {"text": "x"}}})
    assert message == (
        "Node '7' has no 'class_type' (the node type, e.g. \"KSampler\"); every node needs one — "
        "in ComfyUI use Workflow > Export (API) and upload that file"
    )


def test_inputs_must_be_an_object() -> None:
    message = _error({"5": {"class_type": "EmptyImage", "inputs": [64, 64]}})
    assert message == "Node '5' (EmptyImage): 'inputs' must be an object of input name -> value, got an array"


def test_node_must_be_an_object() -> None:
    message = _error({"1": {"class_type": "A", "inputs": {}}, "2": "SaveImage"})
    assert message == "Node '2' must be an object with 'class_type' and 'inputs', got a string"


def test_unsupported_source_type() -> None:
    with pytest.raises(TypeError, match="takes JSON text, bytes, a path or a dict, not set"):
        load_workflow({4, 2})  # type: ignore[arg-type]


def test_parsed_json_that_is_not_an_object_is_named() -> None:
    # json.loads may give any JSON value; a caller passing it on gets the format error, not a TypeError.
    for value, named in ((42, "a number"), ([1, 2], "an array"), (None, "null"), (True, "a boolean")):
        with pytest.raises(WorkflowFormatError, match=f"must be a JSON object mapping node ids to nodes, got {named}"):
            load_workflow(value)
