"""Fuzzing the loader, the UI-format converter and the analyzer with malformed workflows (hypothesis).

Whatever comes in, the publisher gives a result or one of its documented errors, whose message says what is
wrong; never a bare KeyError/TypeError/RecursionError from deep inside, never a huge value echoed back.
The examples are derived from the real fixtures with the real engine's schemas, reproducibly (derandomized,
no example database), and bounded so the file runs in well under a minute on one slow core.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher import (
    AppSpecError,
    BindingError,
    GraphValidationError,
    NodeCatalog,
    WorkflowFormatError,
    build_app_spec,
    check_graph,
    detect_format,
    find_candidates,
    find_model_refs,
    find_outputs,
    load_any_workflow,
    load_workflow,
    validate_graph,
)

from .mutations import API_FIXTURES, FIXTURE_DATA, HUGE, JSON_VALUES, SUBGRAPH_ID, UI_FIXTURES, mutated_fixtures

DOCUMENTED = (WorkflowFormatError, GraphValidationError, AppSpecError, BindingError)
# What a message must not read like: a Python error from inside, passed on as if it were an explanation.
INTERNAL = ("object has no attribute", "is not subscriptable", "unhashable type", "object is not iterable",
            "maximum recursion depth", "has no len()", "list index out of range", "Traceback")
T = TypeVar("T")

# PUBLISHER_FUZZ_EXAMPLES=5000 digs deeper on a developer's machine; CI keeps the bounded default.
EXAMPLES = int(os.environ.get("PUBLISHER_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def refusal_or_result(action: Callable[[], T]) -> T | None:
    """Run `action`; a refusal must be a documented error with a message a person can act on."""
    try:
        return action()
    except DOCUMENTED as exc:
        message = str(exc)
        assert len(message) > 20, f"{type(exc).__name__} with a bare message: {message!r}"
        assert not any(text in message for text in INTERNAL), message[:500]
        assert HUGE[:300] not in message, "a huge value is echoed back"
        return None


def analyze(raw: Any, catalog: NodeCatalog) -> dict[str, Any]:
    """What POST /api/workflows/analyze and POST /api/apps compute, at the publisher level."""
    workflow = load_any_workflow(raw, catalog)
    problems = validate_graph(workflow, catalog)
    candidates = find_candidates(workflow, catalog)
    result = {
        "format": detect_format(raw),
        "workflow": workflow.to_prompt(),
        "nodes": [(n, workflow.class_type(n), workflow.title(n)) for n in workflow.node_ids()],
        "inputs": [vars(c) for c in candidates],
        "outputs": [vars(o) for o in find_outputs(workflow, catalog)],
        "problems": [str(p) for p in problems],
        "models": [vars(m) for m in find_model_refs(workflow, catalog)],
    }
    json.dumps(result, allow_nan=False, default=list)  # the HTTP answer must be JSON (no NaN, no cycles)
    check_graph(workflow, catalog)  # publishing: a graph the engine would refuse is refused here
    suggested = [{"node": c.node_id, "input": c.input_name} for c in candidates if c.suggested]
    build_app_spec(workflow, catalog, suggested)
    return result


# -- (a) arbitrary JSON ----------------------------------------------------------------------------------------

@FUZZ
@given(value=JSON_VALUES)
def test_any_json_value_is_loaded_or_refused_with_a_message(catalog: NodeCatalog, value: Any) -> None:
    assert detect_format(value) in ("api", "ui", "unknown")
    refusal_or_result(lambda: load_workflow(value))
    refusal_or_result(lambda: analyze(value, catalog))


@FUZZ
@given(value=JSON_VALUES, as_bytes=st.booleans())
def test_any_json_text_is_loaded_or_refused_with_a_message(catalog: NodeCatalog, value: Any, as_bytes: bool) -> None:
    text = json.dumps(value)
    refusal_or_result(lambda: load_any_workflow(text.encode() if as_bytes else text, catalog))


@settings(FUZZ, max_examples=max(EXAMPLES // 3, 1))
@given(raw=st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_any_bytes_are_loaded_or_refused_with_a_message(catalog: NodeCatalog, raw: bytes) -> None:
    refusal_or_result(lambda: load_any_workflow(raw, catalog))


# -- (b) structure-aware mutations of the real fixtures (tests/publisher/mutations.py) ----------------------------

@FUZZ
@given(data=st.data())
def test_mutated_ui_workflows_convert_or_are_refused_with_a_message(catalog: NodeCatalog,
                                                                    data: st.DataObject) -> None:
    workflow = data.draw(mutated_fixtures(UI_FIXTURES, catalog))
    refusal_or_result(lambda: analyze(workflow, catalog))


@FUZZ
@given(data=st.data())
def test_mutated_api_workflows_load_or_are_refused_with_a_message(catalog: NodeCatalog,
                                                                  data: st.DataObject) -> None:
    workflow = data.draw(mutated_fixtures(API_FIXTURES, catalog))
    refusal_or_result(lambda: analyze(workflow, catalog))


# -- what the fuzzing found, each pinned by a plain example -------------------------------------------------------


def _ui(name: str = "ui_demo_invert.json") -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(FIXTURE_DATA[name])
    return data


def _ui_node(ui: dict[str, Any], node_id: int) -> dict[str, Any]:
    node: dict[str, Any] = next(n for n in ui["nodes"] if n["id"] == node_id)
    return node


def _refused(action: Callable[[], object]) -> str:
    with pytest.raises(WorkflowFormatError) as error:
        action()
    return str(error.value)


@pytest.mark.parametrize(("value", "named"), [([], "an array"), (None, "null"), (7, "a number")])
def test_parsed_json_that_is_no_object_is_named(catalog: NodeCatalog, value: Any, named: str) -> None:
    # Was: TypeError "load_workflow() takes JSON text, bytes, a path or a dict".
    assert f"got {named}" in _refused(lambda: load_any_workflow(value, catalog))


def test_json_text_nested_too_deeply_is_refused(catalog: NodeCatalog) -> None:
    # Was: RecursionError from the JSON decoder.
    assert "nested too deeply" in _refused(lambda: load_any_workflow("[" * 100_000, catalog))


def test_json_text_with_an_integer_python_cannot_read_is_refused(catalog: NodeCatalog) -> None:
    # Was: a bare ValueError (Python's 4300-digit limit) that the routes do not translate.
    message = _refused(lambda: load_any_workflow('{"1": {"class_type": "EmptyImage", "inputs": {"width": '
                                                 + "9" * 5000 + "}}}", catalog))
    assert "cannot be read" in message and "9" * 100 not in message


def test_a_value_nested_too_deeply_is_refused_naming_node_and_input(catalog: NodeCatalog) -> None:
    # Was: RecursionError while copying the value.
    deep: Any = 1
    for _ in range(5000):
        deep = [deep]
    message = _refused(lambda: load_any_workflow({"1": {"class_type": "EmptyImage", "inputs": {"color": deep}}},
                                                 catalog))
    assert "Node '1' (EmptyImage): input 'color' is nested more than 32 levels deep" in message


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_number_json_cannot_carry_is_refused_naming_node_and_input(catalog: NodeCatalog, bad: float) -> None:
    # Was: loaded; the analyze answer is no strict JSON (the app sent the value as null).
    ui = _ui()
    _ui_node(ui, 5)["mode"] = 0
    _ui_node(ui, 5)["widgets_values"] = [1, bad]
    message = _refused(lambda: load_any_workflow(ui, catalog))
    assert f"Node '5' (ImageBlur): input 'sigma' holds {bad}, which JSON cannot carry" in message


def test_a_long_chain_of_reroutes_converts(catalog: NodeCatalog) -> None:
    # Was: RecursionError (two frames per Reroute) for a chain of a few hundred.
    ui = _ui("ui_format.json")
    nodes, links, source = ui["nodes"][:2], [], 1
    for i in range(3000):
        links.append([1000 + i, source, 0, 100 + i, 0, "*"])
        nodes.append({"id": 100 + i, "type": "Reroute", "mode": 0, "inputs": [{"name": "", "type": "*",
                      "link": 1000 + i}], "outputs": [{"name": "", "type": "*", "links": [1001 + i]}]})
        source = 100 + i
    links.append([4000, source, 0, 2, 0, "IMAGE"])
    nodes[1]["inputs"][0]["link"] = 4000
    ui["nodes"], ui["links"] = nodes, links

    assert load_any_workflow(ui, catalog).inputs("2")["images"] == ["1", 0]


def test_a_loop_of_reroutes_is_refused(catalog: NodeCatalog) -> None:
    ui = _ui("ui_format.json")
    ui["nodes"] += [{"id": 7, "type": "Reroute", "inputs": [{"name": "", "type": "*", "link": 71}], "outputs": []},
                    {"id": 8, "type": "Reroute", "inputs": [{"name": "", "type": "*", "link": 78}], "outputs": []}]
    ui["links"] += [[71, 8, 0, 7, 0, "*"], [78, 7, 0, 8, 0, "*"]]
    ui["nodes"][1]["inputs"][0]["link"] = 71
    assert "its links form a loop through Reroute or bypassed nodes" in _refused(
        lambda: load_any_workflow(ui, catalog))


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("inputs", 3, "node 2 (ImageInvert): 'inputs' must be an array, got a number 3"),
    ("inputs", [7], "node 2 (ImageInvert): inputs[0] must be an object, got a number 7"),
    ("inputs", [{"name": "image", "link": [2]}],
     "node 2 (ImageInvert): inputs[0] ('image') 'link' must be a link id (a number) or null, got an array"),
    ("outputs", {"IMAGE": 1}, "node 2 (ImageInvert): 'outputs' must be an array, got an object"),
    ("outputs", [{"links": 3}], "node 2 (ImageInvert): outputs[0] 'links' must be an array of link ids or null"),
    ("widgets_values", 1.5, "node 2 (ImageInvert): 'widgets_values' must be an array of the widgets' values"),
    ("mode", "4", "node 2 (ImageInvert): 'mode' must be a number (0 active, 2 muted, 4 bypassed), got a string"),
    ("type", 5, "node 2 has no usable 'type': expected the node type's name, got a number 5"),
    ("id", [2], "nodes[2] has no usable 'id': expected a number, got an array"),
])
def test_a_node_field_of_the_wrong_type_is_named(catalog: NodeCatalog, field: str, value: Any,
                                                 expected: str) -> None:
    # Was: TypeError / KeyError / AttributeError from inside the converter.
    ui = _ui()
    assert ui["nodes"][2]["id"] == 2
    ui["nodes"][2][field] = value
    message = _refused(lambda: load_any_workflow(ui, catalog))
    assert expected in message and "save it again" in message


def test_two_nodes_with_one_id_are_named(catalog: NodeCatalog) -> None:
    ui = _ui()
    _ui_node(ui, 5)["id"] = 2
    assert "node id 2 is used by two nodes (ImageBlur and ImageInvert)" in _refused(
        lambda: load_any_workflow(ui, catalog))


@pytest.mark.parametrize(("link", "problem"), [
    ([2, 5, 0], "has 3 fields, expected [id, origin node, origin slot, target node, target slot, type]"),
    ([2, 5, "0", 2, 0, "IMAGE"], "has no usable origin slot: expected a slot number (0 or more), got a string"),
    ([2, None, 0, 2, 0, "IMAGE"], "has no usable origin node: expected a node id, got null"),
])
def test_a_malformed_link_in_use_is_named(catalog: NodeCatalog, link: list[Any], problem: str) -> None:
    # Was: the link silently dropped, then "link 2 is not in 'links'".
    ui = _ui()
    ui["links"] = [link if item[0] == 2 else item for item in ui["links"]]
    assert f"node 2 (ImageInvert): input 'image' uses link 2, which {problem}" in _refused(
        lambda: load_any_workflow(ui, catalog))


def test_links_saved_as_an_object_by_id_are_read(catalog: NodeCatalog) -> None:
    ui = _ui()
    expected = load_any_workflow(ui, catalog)
    ui["links"] = {str(link[0]): link for link in ui["links"]}  # LiteGraph reads this form too
    assert load_any_workflow(ui, catalog) == expected


def test_subgraph_definitions_that_are_no_array_are_named(catalog: NodeCatalog) -> None:
    # Was: TypeError iterating a number.
    ui = _ui()
    ui["definitions"] = {"subgraphs": 3}
    assert "'definitions.subgraphs' must be an array of subgraphs, got a number 3" in _refused(
        lambda: load_any_workflow(ui, catalog))


def test_a_subgraph_that_contains_itself_is_refused_with_the_node_named(catalog: NodeCatalog) -> None:
    ui = _ui()
    _ui_node(ui, 2)["type"] = SUBGRAPH_ID
    inner = {"id": 1, "type": SUBGRAPH_ID, "mode": 0, "inputs": [], "outputs": []}
    ui["definitions"] = {"subgraphs": [{"id": SUBGRAPH_ID, "name": "Again", "nodes": [inner], "links": []}]}
    assert "node 2 is the subgraph 'Again'" in _refused(lambda: load_any_workflow(ui, catalog))


def test_a_subgraph_whose_definition_is_missing_is_named(catalog: NodeCatalog) -> None:
    ui = _ui()
    _ui_node(ui, 2)["type"] = SUBGRAPH_ID
    message = _refused(lambda: load_any_workflow(ui, catalog))
    assert f"node 2 ({SUBGRAPH_ID}) is a subgraph whose definition is missing" in message


def test_a_huge_widget_value_is_not_echoed(catalog: NodeCatalog) -> None:
    ui = _ui()
    _ui_node(ui, 1)["inputs"] = []
    _ui_node(ui, 1)["widgets_values"] = [HUGE, 64, 1, 0]
    message = _refused(lambda: load_any_workflow(ui, catalog))
    assert "node 1 (EmptyImage): widget value 'xxxx" in message and HUGE[:300] not in message


def test_widget_values_saved_by_name_are_checked_too(catalog: NodeCatalog) -> None:
    ui = _ui()
    _ui_node(ui, 1)["widgets_values"] = {"width": "wide", "height": 64}
    assert "node 1 (EmptyImage): widget value 'wide' does not fit input 'width' (INT)" in _refused(
        lambda: load_any_workflow(ui, catalog))


@pytest.mark.parametrize(("node", "expected"), [
    ({"class_type": 5}, "Node '1': 'class_type' must be the node type's name (a string such as \"KSampler\"), "
                        "got a number"),
    ({"class_type": "X" * 300}, "Node '1': its class_type is 300 characters long"),
    ({"class_type": "EmptyImage", "inputs": {"w" * 300: 1}}, "Node '1' (EmptyImage): an input name is 300 "
                                                            "characters long"),
    ({"class_type": "EmptyImage", "inputs": {"width": 2**70}}, "Node '1' (EmptyImage): input 'width' holds an "
                                                               "integer beyond 64 bits"),
])
def test_api_node_fields_that_cannot_be_used_are_named(node: dict[str, Any], expected: str) -> None:
    assert expected in _refused(lambda: load_workflow({"1": node}))


def test_one_node_id_given_twice_is_named() -> None:
    node = {"class_type": "EmptyImage", "inputs": {}}
    assert "Node id '1' is used twice" in _refused(lambda: load_workflow({1: node, "1": node}))


def test_a_link_to_a_node_id_too_long_is_named_not_echoed() -> None:
    # Was: loaded, and validation then echoed the whole id in "is linked to node '...'".
    message = _refused(lambda: load_workflow({"1": {"class_type": "SaveImage", "inputs": {"images": [HUGE, 0]}}}))
    assert "Node '1' (SaveImage): input 'images' is linked to a node whose id is 5000 characters long" in message
    assert HUGE[:300] not in message


def test_a_huge_malformed_link_is_not_echoed(catalog: NodeCatalog) -> None:
    # Was: the whole list repeated in the problem's message.
    workflow = load_workflow({"1": {"class_type": "SaveImage", "inputs": {"images": list(range(5000))}}})
    (problem,) = [p for p in validate_graph(workflow, catalog) if p.kind == "bad_link"]
    assert "holds a malformed link [0, 1, 2, 3, 4, 5, ...]" in problem.message
    assert len(problem.message) < 300


def test_a_huge_default_that_does_not_fit_is_not_echoed(catalog: NodeCatalog) -> None:
    # Was: the whole value repeated in "expected a whole number, got ...".
    prompt = copy.deepcopy(FIXTURE_DATA["demo_invert.json"])
    prompt["1"]["inputs"]["width"] = HUGE
    with pytest.raises(AppSpecError) as error:
        build_app_spec(load_workflow(prompt), catalog, [{"node": "1", "input": "width"}])
    assert "expected a whole number, got \"xxx" in str(error.value) and HUGE[:300] not in str(error.value)


def test_a_huge_node_title_is_not_echoed_in_the_input_name_problem(catalog: NodeCatalog) -> None:
    # Was: the name made from the title ("xxx...", 5000 characters) repeated whole.
    prompt = copy.deepcopy(FIXTURE_DATA["demo_invert.json"])
    prompt["1"]["_meta"] = {"title": "9" + HUGE}
    with pytest.raises(AppSpecError) as error:
        build_app_spec(load_workflow(prompt), catalog, [{"node": "1", "input": "color"}])
    assert "must start with a letter" in str(error.value) and HUGE[:300] not in str(error.value)


def test_a_node_id_of_unicode_digits_sorts() -> None:
    # Was: ValueError from int("²") ("²".isdigit() is true) when the node ids were sorted.
    workflow = load_workflow({"²": {"class_type": "X", "inputs": {}}, "10": {"class_type": "Y", "inputs": {}},
                              "9": {"class_type": "Y", "inputs": {}}})
    assert workflow.node_ids() == ["9", "10", "²"]
