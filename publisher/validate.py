"""Checks a workflow against the engine's node catalog before anything is sent to the engine.

It reports every problem at once (the engine stops at the first unknown node type) and mirrors
``execution.validate_prompt``: unknown node types are reported for every node, while input and
link checks only cover nodes that feed an output, because the engine ignores the rest.
Literal values are checked as the engine converts and compares them (``literals.py``): wrong types,
values out of range, and values outside a fixed list of choices; choices of files (models, uploads)
depend on the machine, so only their type is checked. Links that form a cycle are reported with the
nodes in it, which the engine itself never names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from .cycles import find_cycles
from .literals import check_literal
from .node_schema import InputSpec, NodeCatalog, NodeSchema
from .workflow import Workflow, is_link, node_sort_key, short_repr

ProblemKind = Literal[
    "unknown_node_types",
    "no_outputs",
    "bad_link",
    "missing_link_source",
    "bad_output_slot",
    "link_type_mismatch",
    "required_input_missing",
    "link_expected",
    "invalid_value",
    "value_out_of_range",
    "value_not_in_list",
    "cycle",
]


@dataclass(frozen=True)
class GraphProblem:
    """One thing that would make the engine refuse the workflow."""

    kind: ProblemKind
    message: str
    node_id: str | None = None
    class_type: str | None = None
    input_name: str | None = None
    # For "unknown_node_types": each missing class_type with the ids of the nodes using it.
    missing_types: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # For "cycle": the ids of the nodes that feed one another.
    nodes: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.node_id is None:
            return self.message
        return f"Node '{self.node_id}' ({self.class_type}): {self.message}"


class GraphValidationError(ValueError):
    """Carries all problems found, not just the first."""

    def __init__(self, problems: Iterable[GraphProblem]) -> None:
        self.problems: tuple[GraphProblem, ...] = tuple(problems)
        count = len(self.problems)
        lines = "\n".join(f"- {p}" for p in self.problems)
        super().__init__(f"The workflow has {count} problem{'s' if count != 1 else ''}:\n{lines}")


def types_compatible(received: str, spec: InputSpec) -> bool:
    """Whether an output of type ``received`` may feed ``spec`` (as the engine's type check)."""
    expected = spec.type
    if received == "*" or expected == "*" or received == expected:
        return True
    if expected == "COMBO":
        return received == "COMBO"  # list-typed outputs are normalised to "COMBO" by the catalog
    # Types may be unions written "A,B": any overlap is enough, as in the engine's non-strict mode.
    return bool({t.strip() for t in received.split(",")} & {t.strip() for t in expected.split(",")})


def _unknown_types_problem(workflow: Workflow, catalog: NodeCatalog) -> GraphProblem | None:
    missing: dict[str, list[str]] = {}
    for node_id in workflow.node_ids():
        class_type = workflow.class_type(node_id)
        if class_type not in catalog:
            missing.setdefault(class_type, []).append(node_id)
    if not missing:
        return None

    def describe(class_type: str, ids: list[str]) -> str:
        label = "node" if len(ids) == 1 else "nodes"
        return f"{class_type} ({label} {', '.join(ids)})"

    listing = "; ".join(describe(t, ids) for t, ids in sorted(missing.items()))
    return GraphProblem(
        kind="unknown_node_types",
        message=(
            f"Unknown node types — custom nodes the engine lacks: {listing}; "
            "install their node packs (`python launch.py nodes install GIT_URL@COMMIT | REGISTRY_ID@VERSION`, or "
            "the studio's Engine tab)"
        ),
        missing_types=tuple((t, tuple(ids)) for t, ids in sorted(missing.items())),
    )


def _nodes_feeding_outputs(workflow: Workflow, catalog: NodeCatalog) -> list[str]:
    """Output nodes (unknown types count, as they may be outputs) and everything upstream."""
    roots = [
        n
        for n in workflow.node_ids()
        if (schema := catalog.get(workflow.class_type(n))) is None or schema.output_node
    ]
    if not roots:
        return workflow.node_ids()  # nothing would run; check everything to say the most
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        node_id = stack.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        for value in workflow.inputs(node_id).values():
            if is_link(value) and value[0] in workflow:
                stack.append(value[0])
    return sorted(seen, key=node_sort_key)


def _slot_range(count: int) -> str:
    if count == 0:
        return "no outputs"
    if count == 1:
        return "1 output (slot 0)"
    return f"{count} outputs (slots 0-{count - 1})"


def _missing_source_message(input_name: str, source_id: str) -> str:
    return (
        f"input '{input_name}' is linked to node '{source_id}', which is not in the workflow; "
        "reconnect the input in ComfyUI and export again"
    )


def _check_link(
    workflow: Workflow, catalog: NodeCatalog, spec: InputSpec, value: list[Any]
) -> tuple[ProblemKind, str] | None:
    source_id, slot = value
    if source_id not in workflow:
        return "missing_link_source", _missing_source_message(spec.name, source_id)
    source_type = workflow.class_type(source_id)
    source = catalog.get(source_type)
    if source is None:
        return None  # already reported as an unknown type; its outputs are unknowable
    if not 0 <= slot < len(source.outputs):
        return (
            "bad_output_slot",
            f"input '{spec.name}' is linked to output slot {slot} of node '{source_id}' ({source_type}), "
            f"which has {_slot_range(len(source.outputs))}",
        )
    received = source.outputs[slot]
    if not types_compatible(received, spec):
        return (
            "link_type_mismatch",
            f"input '{spec.name}' expects {spec.type} but is linked to output {slot} ({received}) "
            f"of node '{source_id}' ({source_type})",
        )
    return None


def _check_input(
    workflow: Workflow, catalog: NodeCatalog, node_id: str, spec: InputSpec
) -> tuple[ProblemKind, str] | None:
    inputs = workflow.inputs(node_id)
    if spec.name not in inputs:
        if not spec.required:
            return None
        # The engine rejects a missing required input even when its schema has a default.
        if spec.is_link_type or spec.force_input:
            hint = f"connect a {spec.type} output to it"
        elif spec.default is not None:
            hint = f"set a value (the node's default is {spec.default!r})"
        else:
            hint = "set a value"
        return "required_input_missing", f"required input '{spec.name}' is missing; {hint}"
    value = inputs[spec.name]
    if is_link(value):
        return _check_link(workflow, catalog, spec, value)
    if isinstance(value, list):
        return (
            "bad_link",
            f"input '{spec.name}' holds a malformed link {short_repr(value)}; a link must be "
            "[source node id (string), output slot (integer)]",
        )
    if spec.is_link_type:
        return (
            "link_expected",
            f"input '{spec.name}' needs a connection from a {spec.type} output but holds a literal value",
        )
    return check_literal(spec, value)


def _check_node(
    workflow: Workflow, catalog: NodeCatalog, node_id: str, schema: NodeSchema
) -> list[GraphProblem]:
    problems = []
    for spec in schema.inputs:
        found = _check_input(workflow, catalog, node_id, spec)
        if found is not None:
            kind, message = found
            problems.append(GraphProblem(kind, message, node_id, schema.class_type, spec.name))
    return problems


def _cycle_problem(workflow: Workflow, group: tuple[str, ...]) -> GraphProblem:
    named = ", ".join(f"'{n}' ({workflow.class_type(n)})" for n in group)
    if len(group) == 1:
        message = (f"Node {named} is linked to itself, so the engine cannot run it; connect its input to "
                   "another node's output")
    else:
        message = (f"Nodes {named} feed one another in a cycle, so the engine cannot order them; remove one "
                   "of the links between them")
    return GraphProblem(kind="cycle", message=message, nodes=group)


def validate_graph(workflow: Workflow, catalog: NodeCatalog) -> list[GraphProblem]:
    """All problems that would make the engine reject ``workflow``; empty when it is sound."""
    problems: list[GraphProblem] = []
    unknown = _unknown_types_problem(workflow, catalog)
    if unknown is not None:
        problems.append(unknown)
    has_output = any(
        (schema := catalog.get(workflow.class_type(n))) is not None and schema.output_node for n in workflow
    )
    # With unknown types present one of them may well be the output node, so don't claim none.
    if not has_output and unknown is None:
        problems.append(
            GraphProblem(
                kind="no_outputs",
                message=(
                    "The workflow has no output node (such as Save Image or Preview Image), so the engine "
                    "would refuse it (prompt_no_outputs); add a Save Image node and export again"
                ),
            )
        )
    feeding = _nodes_feeding_outputs(workflow, catalog)
    problems.extend(_cycle_problem(workflow, group) for group in find_cycles(workflow, feeding))
    for node_id in feeding:
        schema = catalog.get(workflow.class_type(node_id))
        if schema is not None:
            problems.extend(_check_node(workflow, catalog, node_id, schema))
        else:
            # Unknown schema: a dangling link can still be found structurally.
            for name, value in workflow.inputs(node_id).items():
                if is_link(value) and value[0] not in workflow:
                    message = _missing_source_message(name, value[0])
                    class_type = workflow.class_type(node_id)
                    problems.append(GraphProblem("missing_link_source", message, node_id, class_type, name))
    return problems


def check_graph(workflow: Workflow, catalog: NodeCatalog) -> None:
    """Raise :class:`GraphValidationError` listing every problem, if there is any."""
    problems = validate_graph(workflow, catalog)
    if problems:
        raise GraphValidationError(problems)
