"""The per-app guard: a workflow submitted to an app must be the app's published workflow, only its published
inputs changed.

A client of an app's Comfy API v2 base URL (or of a RunPod worker's ``{"input": {"workflow": ...}}``) sends a whole
API-format graph, not named values. :func:`app_values_from_workflow` compares it with the published one and returns
the values of the app's inputs as the graph sets them, by input name, for the usual path (``apply_values`` through
the run service's checks); or raises :class:`AppWorkflowError` with every difference that is not allowed:

- a node added or removed, a ``class_type`` changed, a link changed (or a link turned into a value, or back);
- an input that is not published changed, added or left out ("it must stay 20; the app's inputs are: ...");
- a published input sent as a link, or with a value of the wrong type or out of range (judged by
  :mod:`publisher.apply`, the one validator of input values).

What may differ: ``_meta`` (titles are the client's own; the app's ``_meta`` is what runs), node key order, and
numbers written ``20`` or ``20.0``. A published input left out of its node keeps the app's value (its default),
as a missing value does in the typed API. Every published input the graph sets is returned, changed or not: the
value sent is the value used, seeds included (no fresh draw for a seed that was sent; ``-1`` draws one, as in the
typed API). A file input's value is returned as sent, a plain file name or a v2 asset reference
(``{"__type": "core/ASSET", "info": {"id": ...}}``): the caller resolves it to the stored file.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .apply import FILE_TYPES, MAX_LISTED, InputValuesError, apply_values
from .appspec import AppInput, AppSpec
from .quoting import quote
from .workflow import Workflow, WorkflowSource, is_link, load_workflow, node_sort_key

ASSET_TYPE = "core/ASSET"
_ABSENT: Any = object()


@dataclass(frozen=True)
class GuardProblem:
    """One difference that is not allowed. ``reason`` is a short machine word (``node_added``, ``node_removed``,
    ``class_type_changed``, ``link_changed``, ``input_not_published``, ``input_added``, ``input_missing``,
    ``invalid_value``); ``input`` is None for a whole node."""

    node: str
    class_type: str
    input: str | None
    reason: str
    message: str
    value: Any = None  # what was sent (None for a node or an input left out)
    allowed: Any = None  # what would be accepted: the app's value, a range, choices...


class AppWorkflowError(ValueError):
    """The submitted workflow is not the app's published one with only its inputs changed; ``problems`` has each."""

    def __init__(self, problems: list[GuardProblem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        lines = "\n".join(f"- {p.message}" for p in self.problems)
        super().__init__(f"The workflow differs from the app's in {count} place{'s' if count != 1 else ''} that "
                         f"may not change:\n{lines}")

    def node_errors(self) -> dict[str, list[dict[str, Any]]]:
        """The problems by node id, in the shape of the v2 error envelope's ``details.node_errors``."""
        found: dict[str, list[dict[str, Any]]] = {}
        for p in self.problems:
            entry: dict[str, Any] = {"field": p.input, "reason": p.reason, "message": p.message,
                                     "class_type": p.class_type}
            if p.allowed is not None:
                entry["allowed"] = p.allowed
            found.setdefault(p.node, []).append(entry)
        return found


def is_asset_reference(value: object) -> bool:
    """True for a v2 ``core/ASSET`` reference (any shape of its ``info``: :func:`asset_reference_problem` judges)."""
    return isinstance(value, Mapping) and value.get("__type") == ASSET_TYPE


def asset_reference_problem(value: Mapping[str, Any]) -> str | None:
    """What is wrong with an asset reference's shape, or None. ``info.id`` is required; hash and file_path are
    optional strings (hints the id overrides)."""
    info = value.get("info")
    if not isinstance(info, Mapping):
        return "its 'info' must be an object with the asset's 'id'"
    if not isinstance(info.get("id"), str) or not info["id"].strip():
        return "its 'info.id' must be the asset's id (a string, as POST /api/v2/assets returned it)"
    for hint in ("hash", "file_path"):
        if hint in info and not isinstance(info[hint], str):
            return f"its 'info.{hint}' must be a string when given"
    return None


def app_values_from_workflow(spec: AppSpec, submitted: WorkflowSource | Workflow) -> dict[str, Any]:
    """The app's input values (by name) that the submitted graph sets, checked; or :class:`AppWorkflowError` with
    every problem. A submission that is no API-format workflow at all raises the loader's WorkflowFormatError."""
    sent = submitted if isinstance(submitted, Workflow) else load_workflow(submitted)
    published = spec.loaded_workflow
    bindings = {(i.node, i.input): i for i in spec.inputs}
    listing = _inputs_listing(spec.inputs)
    problems: list[GuardProblem] = []
    values: dict[str, Any] = {}

    for node in sorted(set(published.nodes) | set(sent.nodes), key=node_sort_key):
        if node not in sent.nodes:
            class_type = published.class_type(node)
            problems.append(GuardProblem(node, class_type, None, "node_removed",
                                         f"node {node} ({class_type}) is missing: the app's workflow has it; send "
                                         "the app's workflow with only its inputs changed"))
        elif node not in published.nodes:
            class_type = sent.class_type(node)
            problems.append(GuardProblem(node, class_type, None, "node_added",
                                         f"node {node} ({class_type}) is not in the app's workflow: remove it; "
                                         "an app runs only its published graph"))
        elif published.class_type(node) != sent.class_type(node):
            want, got = published.class_type(node), sent.class_type(node)
            problems.append(GuardProblem(node, got, None, "class_type_changed",
                                         f"node {node} is a {want} in the app's workflow, not a {got}: the node "
                                         "types cannot change", value=got, allowed=want))
        else:
            _compare_inputs(node, published, sent, bindings, listing, values, problems)

    problems += _value_problems(spec, published, values)
    if problems:
        raise AppWorkflowError(problems)
    return values


def _compare_inputs(node: str, published: Workflow, sent: Workflow, bindings: Mapping[tuple[str, str], AppInput],
                    listing: str, values: dict[str, Any], problems: list[GuardProblem]) -> None:
    class_type = published.class_type(node)
    ours, theirs = published.inputs(node), sent.inputs(node)
    for name in sorted(set(ours) | set(theirs)):
        where = f"node {node} ({class_type}) input '{name}'"
        want, got = ours.get(name, _ABSENT), theirs.get(name, _ABSENT)
        binding = bindings.get((node, name))
        if binding is not None:
            if got is _ABSENT:
                continue  # the app's own value (its default) is used, as for a value left out of the typed API
            if is_link(got):
                problems.append(GuardProblem(node, class_type, name, "invalid_value",
                                             f"{where} is the app's input '{binding.name}': it takes a value, not "
                                             f"{_describe(got)}", value=got))
            else:
                values[binding.name] = got
            continue
        if _same(want, got):
            continue
        if want is _ABSENT:
            problems.append(GuardProblem(node, class_type, name, "input_added",
                                         f"{where} is not in the app's workflow: remove it", value=got))
        elif is_link(want) or is_link(got):
            problems.append(GuardProblem(node, class_type, name, "link_changed",
                                         f"{where} is {_describe(want)} in the app's workflow, not "
                                         f"{_describe(got)}: the links cannot change",
                                         value=None if got is _ABSENT else got, allowed=want))
        elif got is _ABSENT:
            problems.append(GuardProblem(node, class_type, name, "input_missing",
                                         f"{where} is missing: it must stay {quote(want)}", allowed=want))
        else:
            problems.append(GuardProblem(node, class_type, name, "input_not_published",
                                         f"{where} is not an input of this app: it must stay {quote(want)}, not "
                                         f"{quote(got)}; {listing}", value=got, allowed=want))


def _value_problems(spec: AppSpec, published: Workflow, values: Mapping[str, Any]) -> list[GuardProblem]:
    """Each sent value judged by the code that applies it; an asset reference only by its shape (the caller
    resolves it)."""
    problems: list[GuardProblem] = []
    to_check: dict[str, Any] = {}
    for item in spec.inputs:
        if item.name not in values:
            continue
        value = values[item.name]
        if item.type in FILE_TYPES and is_asset_reference(value):
            if (why := asset_reference_problem(value)) is not None:
                problems.append(_problem(published, item, value, f"is not a usable asset reference: {why}", None))
        else:
            to_check[item.name] = value
    try:
        # A fixed generator: a seed of -1 is drawn here only to be judged, never used.
        apply_values(published, spec.inputs, to_check, rng=random.Random(0))
    except InputValuesError as exc:
        by_name = {i.name: i for i in spec.inputs}
        for error in exc.errors:
            if error.input not in to_check:
                continue  # a required input the graph left out: the caller's own check says so, once
            item = by_name[error.input]
            allowed = f"; allowed: {error.allowed_text}" if error.allowed_text else ""
            problems.append(_problem(published, item, to_check[error.input], f"{error.message}{allowed}",
                                     error.allowed))
    return problems


def _problem(published: Workflow, item: AppInput, value: Any, message: str, allowed: Any) -> GuardProblem:
    class_type = published.class_type(item.node)
    return GuardProblem(item.node, class_type, item.input, "invalid_value",
                        f"node {item.node} ({class_type}) input '{item.input}' (the app's input '{item.name}'): "
                        f"{message}", value=value,
                        allowed=list(allowed) if isinstance(allowed, tuple) else allowed)


def _inputs_listing(inputs: tuple[AppInput, ...]) -> str:
    if not inputs:
        return "this app has no inputs"
    shown = [f"'{i.name}' (node {i.node} input '{i.input}')" for i in inputs[:MAX_LISTED]]
    more = f" and {len(inputs) - MAX_LISTED} more" if len(inputs) > MAX_LISTED else ""
    return "the app's inputs are: " + ", ".join(shown) + more


def _describe(value: Any) -> str:
    if value is _ABSENT:
        return "left out"
    if is_link(value):
        return f"linked to node {value[0]} output {value[1]}"
    return f"the value {quote(value)}"


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values: 20 and 20.0 are the same number; true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b
