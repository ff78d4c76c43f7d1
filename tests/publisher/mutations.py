"""Hypothesis strategies for malformed workflows: arbitrary JSON, and structure-aware mutations of the real
fixtures (UI and API format). Shared by the publisher's fuzz tests and the HTTP-level ones."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

from publisher import NodeCatalog, detect_format

from .helpers import FIXTURES, WORKFLOWS


def fresh(values: list[Any]) -> st.SearchStrategy[Any]:
    """One of `values`, a copy each time: a list or dict put into one example must not be shared with the next
    (mutating a shared one can even make it contain itself)."""
    return st.sampled_from(values).map(copy.deepcopy)


HUGE = "x" * 5000  # a value no message may echo whole
SUBGRAPH_ID = "8d5b1c1e-0b8a-4b5e-9f0e-2f0a9c3b1d22"


def _fixture_files() -> dict[str, Any]:
    paths = [*sorted(FIXTURES.glob("*.json")), *sorted(WORKFLOWS.glob("*.json"))]
    return {path.name: json.loads(path.read_text()) for path in paths}


FIXTURE_DATA = _fixture_files()
UI_FIXTURES = sorted(name for name, data in FIXTURE_DATA.items() if detect_format(data) == "ui")
API_FIXTURES = sorted(name for name, data in FIXTURE_DATA.items() if detect_format(data) == "api")


KEYS = st.sampled_from(["nodes", "links", "prompt", "class_type", "inputs", "_meta", "title", "id", "type",
                         "mode", "widgets_values", "definitions", "subgraphs", "extra", "groupNodes", "link",
                         "origin_id", "origin_slot", "1", "2", "²", "3:²"]) | st.text(max_size=6)
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats()
            | st.sampled_from([2**64, -(2**63), 10**30, HUGE, "EmptyImage", "SaveImage", "Reroute", "*"])
            | st.text(max_size=12))
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=25,
)


WRONG = fresh([None, "", "1", "abc", 0, 1, -1, 2**63, 10**20, 1.5, True, [], {}, [1], ["1", 0],
                          [1, 2, 3], {"a": 1}, HUGE, float("nan"), float("inf")])


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON tree, the root first."""
    yield path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from _paths(child, (*path, key))


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


@st.composite
def _generic_mutation(draw: st.DrawFn, data: Any) -> Any:
    """Drop a key, change a field's type, turn a list into an object, duplicate an element..."""
    path = draw(st.sampled_from(list(_paths(data))))
    if not path:
        return draw(JSON_VALUES)
    parent, key = _at(data, path[:-1]), path[-1]
    current = parent[key]
    operation = draw(st.sampled_from(["drop", "json", "wrong", "reshape", "duplicate", "id_kind"]))
    if operation == "drop":
        del parent[key]
    elif operation == "json":
        parent[key] = draw(JSON_VALUES)
    elif operation == "wrong":
        parent[key] = draw(WRONG)
    elif operation == "reshape" and isinstance(current, list):
        parent[key] = {str(i): item for i, item in enumerate(current)}
    elif operation == "reshape" and isinstance(current, dict):
        parent[key] = list(current.values())
    elif operation == "duplicate" and isinstance(parent, list):
        parent.append(copy.deepcopy(current))
    elif operation == "id_kind" and isinstance(current, int | str) and not isinstance(current, bool):
        parent[key] = str(current) if isinstance(current, int) else int(current) if current.isdigit() else None
    return data


def _node_types(catalog: NodeCatalog) -> st.SearchStrategy[str]:
    known = ["EmptyImage", "SaveImage", "KSampler", "CLIPTextEncode", "LoadImage", "CheckpointLoaderSimple",
             "PreviewImage", "ImageInvert", "EmptyLatentImage", "VAEDecode"]
    return st.sampled_from([t for t in known if t in catalog] + ["Reroute", "PrimitiveNode", "Note",
                                                                  "FancyCustomNode", "workflow>group"])



@st.composite
def _ui_mutation(draw: st.DrawFn, data: dict[str, Any], catalog: NodeCatalog) -> dict[str, Any]:
    """What breaks a UI-format file's meaning: links, widgets, node types, modes, subgraphs, groups."""
    nodes = [n for n in data.get("nodes", []) if isinstance(n, dict)]
    links = [link for link in data.get("links", []) if isinstance(link, list)] if isinstance(
        data.get("links"), list) else []
    operation = draw(st.sampled_from(["link", "links_as_object", "widgets", "type", "mode", "subgraph",
                                      "self_subgraph", "missing_subgraph", "group", "input_link"]))
    if operation == "link" and links:
        link = draw(st.sampled_from(links))
        field = draw(st.integers(0, max(len(link) - 1, 0)))
        if link and draw(st.booleans()):
            link[field] = draw(fresh([9999, -1, 2**70, "4", None, [1], 0.5]))
        else:
            del link[field:]  # wrong arity
    elif operation == "links_as_object" and links:
        data["links"] = {str(link[0]): link for link in links if link}
    elif operation == "widgets" and nodes:
        node = draw(st.sampled_from(nodes))
        values = node.get("widgets_values")
        if isinstance(values, list) and values and draw(st.booleans()):
            index = draw(st.integers(0, len(values) - 1))
            values[index] = draw(WRONG | JSON_VALUES)
        else:
            node["widgets_values"] = draw(st.lists(SCALARS, max_size=8) | WRONG)
    elif operation == "type" and nodes:
        draw(st.sampled_from(nodes))["type"] = draw(_node_types(catalog) | WRONG)
    elif operation == "mode" and nodes:
        draw(st.sampled_from(nodes))["mode"] = draw(st.sampled_from([0, 2, 4, 1, -1, "4", None]))
    elif operation in ("subgraph", "self_subgraph", "missing_subgraph") and nodes:
        node = draw(st.sampled_from(nodes))
        node["type"] = SUBGRAPH_ID
        inner = {"id": 1, "type": SUBGRAPH_ID if operation == "self_subgraph" else "ImageInvert", "mode": 0}
        if operation != "missing_subgraph":
            data["definitions"] = {"subgraphs": [{"id": SUBGRAPH_ID, "name": "Inner", "nodes": [inner],
                                                  "links": [], "inputs": [], "outputs": []}]}
    elif operation == "group":
        data.setdefault("groups", []).append(draw(JSON_VALUES))
        data["extra"] = {"groupNodes": {"My group": draw(JSON_VALUES)}}
        if nodes:
            draw(st.sampled_from(nodes))["type"] = draw(st.sampled_from(["My group", "workflow>My group"]))
    elif operation == "input_link" and nodes:
        node = draw(st.sampled_from(nodes))
        entries = node.get("inputs")
        if isinstance(entries, list) and entries and isinstance(entries[0], dict):
            entries[0]["link"] = draw(fresh([9999, -1, 2**70, "1", [1], {"id": 1}, 1.0]))
    return data


@st.composite
def _api_mutation(draw: st.DrawFn, data: dict[str, Any], catalog: NodeCatalog) -> dict[str, Any]:
    """What breaks an API-format prompt's meaning: links (dangling, wrong arity, odd slots), types, values."""
    nodes = [(node_id, node) for node_id, node in data.items() if isinstance(node, dict)]
    if not nodes:
        return data
    node_id, node = draw(st.sampled_from(nodes))
    inputs = node.get("inputs") if isinstance(node.get("inputs"), dict) else None
    operation = draw(st.sampled_from(["link", "type", "value", "self_link", "int_ids"]))
    if operation == "link" and inputs:
        name = draw(st.sampled_from(sorted(inputs)))
        inputs[name] = draw(fresh([["999", 0], ["1", -1], ["1", 2**70], [node_id], [node_id, 0, 1],
                                             [1, 0], ["1", "0"], [None, 0], [[1], 0]]))
    elif operation == "type":
        node["class_type"] = draw(_node_types(catalog) | WRONG)
    elif operation == "value" and inputs:
        inputs[draw(st.sampled_from(sorted(inputs)))] = draw(WRONG | JSON_VALUES)
    elif operation == "self_link" and inputs:
        inputs[draw(st.sampled_from(sorted(inputs)))] = [node_id, 0]  # a one-node cycle
    elif operation == "int_ids":
        data[int(node_id) if str(node_id).isdigit() else node_id] = data.pop(node_id)
    return data


@st.composite
def mutated_fixtures(draw: st.DrawFn, names: list[str], catalog: NodeCatalog) -> Any:
    data = copy.deepcopy(FIXTURE_DATA[draw(st.sampled_from(names))])
    for _ in range(draw(st.integers(1, 3))):
        if isinstance(data, dict) and draw(st.booleans()):
            specific = _ui_mutation if detect_format(data) == "ui" else _api_mutation
            data = draw(specific(data, catalog))
        else:
            data = draw(_generic_mutation(data))
    return data
