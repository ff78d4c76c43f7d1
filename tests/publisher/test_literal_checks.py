"""Publish-time checks of a workflow's literal values and links, against the real engine's schemas: what the
engine would refuse is named (node, input, what is allowed); what it accepts is never refused."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest

from publisher import GraphProblem, NodeCatalog, WorkflowFormatError, load_workflow, validate_graph
from tests.publisher.helpers import shipped_workflow

TINY = {  # model-free and instant: the engine can run it for real
    "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
}


def _tiny(**width_inputs: Any) -> dict[str, Any]:
    prompt = copy.deepcopy(TINY)
    prompt["1"]["inputs"].update(width_inputs)
    return prompt


def _problems(prompt: dict[str, Any], catalog: NodeCatalog) -> list[GraphProblem]:
    return validate_graph(load_workflow(prompt), catalog)


def _txt2img(node: str, **inputs: Any) -> dict[str, Any]:
    prompt = shipped_workflow("txt2img_sd15.json").to_prompt()
    prompt[node]["inputs"].update(inputs)
    return prompt


@pytest.mark.parametrize("value", [64, 64.0, 64.9, "64", " 64 ", True, "abc", "6.4e1", 1e9, -5, None, {"a": 1}])
def test_int_literals_are_judged_as_the_engine_judges_them(catalog: NodeCatalog, engine_url: str,
                                                           value: Any) -> None:
    """The verdict on EmptyImage.width agrees with the engine's own POST /prompt for the same value."""
    prompt = _tiny(width=value)
    ours = [p for p in _problems(prompt, catalog) if p.node_id == "1"]
    body = json.dumps({"prompt": prompt})  # as Python writes it: Infinity included, which the engine reads
    answer = httpx.post(f"{engine_url}/prompt", content=body, timeout=30, trust_env=False)
    assert answer.status_code in (200, 400), answer.text
    assert bool(ours) == (answer.status_code == 400), (ours, answer.text)
    if ours:
        (problem,) = ours
        assert (problem.node_id, problem.class_type, problem.input_name) == ("1", "EmptyImage", "width")
        assert problem.kind in ("invalid_value", "value_out_of_range")
        assert "between 1 and 16384" in problem.message  # what is allowed


def test_an_infinite_literal_is_refused_at_load_as_the_engine_refuses_it(engine_url: str) -> None:
    prompt = _tiny(width=float("inf"))
    with pytest.raises(WorkflowFormatError, match="Node '1' \\(EmptyImage\\): input 'width'"):
        load_workflow(prompt)
    body = json.dumps({"prompt": prompt})  # Infinity, which the engine reads
    assert httpx.post(f"{engine_url}/prompt", content=body, timeout=30, trust_env=False).status_code == 400


def test_wrong_type_and_out_of_range_are_named(catalog: NodeCatalog) -> None:
    problems = _problems(_txt2img("5", width="abc", height=1e9), catalog)
    by_input = {p.input_name: p for p in problems}
    assert by_input["width"].kind == "invalid_value"
    assert str(by_input["width"]) == ("Node '5' (EmptyLatentImage): input 'width' holds \"abc\", which is not a "
                                      "whole number (INT); give a number between 16 and 16384")
    assert by_input["height"].kind == "value_out_of_range"
    assert "between 16 and 16384" in by_input["height"].message


def test_float_literals(catalog: NodeCatalog) -> None:
    assert _problems(_txt2img("3", cfg="7.5"), catalog) == []  # float("7.5") is what the engine does
    (problem,) = _problems(_txt2img("3", cfg="high"), catalog)
    assert (problem.kind, problem.input_name) == ("invalid_value", "cfg")
    (problem,) = _problems(_txt2img("3", denoise=2), catalog)
    assert (problem.kind, problem.input_name) == ("value_out_of_range", "denoise")


def test_fixed_choices_are_checked_but_file_lists_are_not(catalog: NodeCatalog) -> None:
    (problem,) = _problems(_txt2img("3", sampler_name="warp-drive"), catalog)
    assert (problem.kind, problem.node_id, problem.input_name) == ("value_not_in_list", "3", "sampler_name")
    assert "euler" in problem.message
    # A checkpoint this engine does not have stays publishable: the model list depends on the machine.
    assert _problems(_txt2img("4", ckpt_name="not-here-yet.safetensors"), catalog) == []
    (problem,) = _problems(_txt2img("4", ckpt_name={"not": "a name"}), catalog)  # a wrong type is refused
    assert (problem.kind, problem.input_name) == ("invalid_value", "ckpt_name")


def test_a_huge_value_is_not_echoed(catalog: NodeCatalog) -> None:
    (problem,) = _problems(_txt2img("5", width="x" * 100_000), catalog)
    assert len(problem.message) < 300


def test_nodes_that_feed_no_output_are_not_judged(catalog: NodeCatalog) -> None:
    prompt = _tiny()
    prompt["9"] = {"class_type": "EmptyImage", "inputs": {"width": "abc", "height": 8, "batch_size": 1, "color": 0}}
    assert _problems(prompt, catalog) == []  # the engine ignores node 9, and so do we


def test_a_self_loop_is_named(catalog: NodeCatalog) -> None:
    prompt = _tiny()
    prompt["2"]["inputs"]["image"] = ["2", 0]
    cycles = [p for p in _problems(prompt, catalog) if p.kind == "cycle"]
    assert [p.nodes for p in cycles] == [("2",)]
    assert "Node '2' (ImageInvert) is linked to itself" in str(cycles[0])


def test_a_cycle_names_its_nodes_only(catalog: NodeCatalog) -> None:
    prompt = _tiny()
    prompt["4"] = {"class_type": "ImageInvert", "inputs": {"image": ["5", 0]}}
    prompt["5"] = {"class_type": "ImageInvert", "inputs": {"image": ["4", 0]}}
    prompt["2"]["inputs"]["image"] = ["4", 0]  # the cycle 4 <-> 5 feeds the output through node 2
    cycles = [p for p in _problems(prompt, catalog) if p.kind == "cycle"]
    assert [p.nodes for p in cycles] == [("4", "5")]
    assert "'4' (ImageInvert), '5' (ImageInvert) feed one another in a cycle" in cycles[0].message


def test_a_long_chain_is_no_cycle(catalog: NodeCatalog) -> None:
    prompt = _tiny()
    for n in range(10, 3010):  # deeper than Python's recursion limit
        prompt[str(n)] = {"class_type": "ImageInvert", "inputs": {"image": [str(n - 1) if n > 10 else "1", 0]}}
    prompt["2"]["inputs"]["image"] = ["3009", 0]
    assert _problems(prompt, catalog) == []
