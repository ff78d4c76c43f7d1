"""A v2 workflow split into its structure and the run's values (app.v2.graph_values): what becomes a value, what
stays in the structure, and which values the engine's schema would refuse."""

from __future__ import annotations

import copy
from typing import Any

from app.v2.graph_values import ValueSlot, bindings, refused, split
from publisher import NodeCatalog

CATALOG = NodeCatalog.from_object_info({
    "EmptyImage": {"input": {"required": {
        "width": ["INT", {"default": 512, "min": 1, "max": 16384}], "height": ["INT", {"default": 512, "min": 1}],
        "batch_size": ["INT", {"default": 1, "min": 1}], "color": ["INT", {"default": 0, "min": 0}]}},
        "output": ["IMAGE"], "output_node": False, "name": "EmptyImage", "category": "image"},
    "SaveImage": {"input": {"required": {"images": ["IMAGE", {}], "filename_prefix": ["STRING", {}]}},
                  "output": [], "output_node": True, "name": "SaveImage", "category": "image"},
})


def graph(color: Any = 7, width: Any = 64, prefix: str = "out/a", title: str = "Save") -> dict[str, Any]:
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": width, "height": 64, "batch_size": 1,
                                                         "color": color}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix},
                  "_meta": {"title": title}}}


def test_numbers_and_the_prefix_are_values_the_rest_is_structure() -> None:
    structure, values = split(graph())
    assert values == {ValueSlot("1", "width", "int"): 64, ValueSlot("1", "height", "int"): 64,
                      ValueSlot("1", "batch_size", "int"): 1, ValueSlot("1", "color", "int"): 7,
                      ValueSlot("2", "filename_prefix", "text"): "out/a"}
    assert structure["2"]["inputs"]["images"] == ["1", 0] and structure["2"]["_meta"] == {"title": "Save"}
    assert split(graph(color=8, prefix="out/b"))[0] == structure  # other values: the same structure
    assert split(graph(title="Other"))[0] != structure
    assert split(graph(color=7.5))[0] != structure  # a float where an int was: another kind, another structure
    # What the engine would refuse stays in the structure, for the full checks to name it.
    for odd in (2**70, float("inf"), "seven", [1, 2]):
        assert ValueSlot("1", "color", "int") not in split(graph(color=odd))[1]
    flag = copy.deepcopy(graph())
    flag["1"]["inputs"]["extra"] = True
    assert split(flag)[1][ValueSlot("1", "extra", "bool")] is True
    assert ValueSlot("1", "color", "int") not in split(graph(), skip=frozenset({("1", "color")}))[1]


def test_each_value_gets_an_input_of_its_own_name() -> None:
    slots = [ValueSlot("1_a", "b", "int"), ValueSlot("1", "a_b", "int"), ValueSlot("2", "filename_prefix", "text")]
    made = bindings(slots, {"value_1_a_b"})
    assert [made[s].name for s in slots] == ["value_1_a_b_2", "value_1_a_b_3", "value_2_filename_prefix"]
    assert [made[s].type for s in slots] == ["int", "int", "text"]
    assert made[slots[2]].max_length is not None and made[slots[2]].max_length >= 1_000_000


def test_values_the_engine_refuses_are_found() -> None:
    assert not refused(graph(), split(graph())[1], CATALOG)
    assert refused(graph(width=0), split(graph(width=0))[1], CATALOG)  # below the schema's minimum
    assert refused(graph(width=20000), split(graph(width=20000))[1], CATALOG)
    escaping = graph(prefix="../../etc/x")
    assert refused(escaping, split(escaping)[1], CATALOG)  # a prefix that leaves the output folder
