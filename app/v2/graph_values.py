"""A v2 workflow split into its structure and its values: every literal number and boolean of a node input (a seed,
a size, a step count, a colour) and each `filename_prefix` become values of the run, so graphs that differ only
there share one version of the internal app (app.v2.workflow_versions) and their values go in as any run's inputs
do: stored with the run (a restart runs it again with the same values), applied by apply_values at run time.
Other texts, links, lists and file names stay in the structure (a changed prompt is a new version): a caller's text
bound to an input would be read as a dynamic prompt, and a model's name decides which files the run needs. A
prefix is the text clients change per run to keep outputs apart; here a run's outputs have their own folder."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from publisher import AppInput, NodeCatalog
from publisher.apply import TEXT_MAX_LENGTH_LIMIT
from publisher.file_paths import PREFIX_INPUT, path_problems
from publisher.literals import check_literal
from publisher.workflow import MAX_INT

ValueKind = Literal["int", "float", "bool", "text"]
_MARK = "__v2_value__"  # a value's place in the structure: its kind, not the value


@dataclass(frozen=True)
class ValueSlot:
    node: str
    input: str
    kind: ValueKind


def kind_of(name: str, value: Any) -> ValueKind | None:
    """The binding type of a value the run may set, or None when it stays in the structure (what the engine would
    refuse, an integer beyond 64 bits or a non-finite number, stays there too: the full checks name it)."""
    if isinstance(value, str):
        return "text" if name == PREFIX_INPUT else None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if -MAX_INT < value < MAX_INT else None
    if isinstance(value, float):
        return "float" if math.isfinite(value) else None
    return None


def split(graph: dict[str, Any], skip: frozenset[tuple[str, str]] = frozenset()
          ) -> tuple[dict[str, Any], dict[ValueSlot, Any]]:
    """(the structure, each value by its slot); `skip`: (node, input) pairs that are files of the run."""
    structure: dict[str, Any] = {}
    values: dict[ValueSlot, Any] = {}
    for node, body in graph.items():
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), dict):
            structure[node] = body
            continue
        inputs = {}
        for name, value in body["inputs"].items():
            kind = kind_of(name, value) if (str(node), name) not in skip else None
            if kind is None:
                inputs[name] = value
            else:
                values[ValueSlot(str(node), name, kind)] = value
                inputs[name] = {_MARK: kind}
        structure[node] = {**body, "inputs": inputs}
    return structure, values


def bindings(slots: list[ValueSlot], taken: set[str]) -> dict[ValueSlot, AppInput]:
    """An input of the version per value slot, named after its node and input (unique among `taken`, which grows)."""
    found = {}
    for slot in slots:
        base = "value_" + re.sub(r"\W", "_", f"{slot.node}_{slot.input}")
        name, n = base, 2
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        taken.add(name)
        found[slot] = AppInput(node=slot.node, input=slot.input, type=slot.kind, name=name, label=name,
                               max_length=TEXT_MAX_LENGTH_LIMIT if slot.kind == "text" else None)
    return found


def refused(graph: dict[str, Any], values: dict[ValueSlot, Any], catalog: NodeCatalog) -> bool:
    """Whether the engine's schema refuses any of these values, or a prefix leaves its folder (the caller then runs
    the full checks, which name it: the graph's structure was checked already)."""
    if any(slot.kind == "text" for slot in values) and path_problems(graph, catalog):
        return True
    for slot, value in values.items():
        schema = catalog.get(str(graph[slot.node].get("class_type")))
        spec = schema.input(slot.input) if schema is not None else None
        if spec is not None and check_literal(spec, value) is not None:
            return True
    return False


__all__ = ["ValueSlot", "bindings", "kind_of", "refused", "split"]
