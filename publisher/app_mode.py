"""What a UI-format file says beyond its graph: ComfyUI's App Mode choices and the node packs its nodes come from.

App Mode (comfyui-frontend-package 1.4x-1.58, files often named ``*.app.json``) keeps the app's form in the file's
``extra``::

    "linearMode": true,  # the editor opens it as an app
    "linearData": {"inputs": [[node_id, widget_name] | [node_id, widget_name, {"height": 120, ...}], ...],
                   "outputs": [node_id, ...]}

The inputs are in the form's order. A widget of a PrimitiveNode stands for the widgets it feeds. Node ids are
those of the top-level graph, which the converter keeps; an id already written ``outer:inner`` (a node inside a
subgraph) is kept as it is, the converter's id for it. Newer editors (1.5x) name a widget by its widget id,
``<workflow id>:<node id>:<widget name>`` (both URI-encoded). A widget promoted onto a subgraph instance stands for
the inner inputs it feeds (:mod:`publisher.promoted_widgets`), as does an older entry that names the inner node by
its own id when exactly one instance promotes that widget (the editor drops an ambiguous one).

The packs the file's nodes come from are read too (:mod:`publisher.node_packs`).

Reading never refuses a file: an App Mode entry that cannot be read is listed in ``problems`` and skipped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from .model_needs import declared_hashes
from .model_sources import declared_sources
from .node_packs import NodePack, pack_of
from .node_schema import NodeCatalog
from .promoted_widgets import instances_feeding, promoted_targets, subgraph_definitions, widget_name_at
from .ui_convert import load_any_workflow
from .workflow import MAX_NAME_LENGTH, Workflow, WorkflowSource, _read_source, detect_format, short_repr

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
MAX_APP_MODE_ENTRIES = 500  # an app's form has a few dozen at most; a longer list is a broken file


@dataclass(frozen=True)
class AppModeInput:
    """One widget App Mode puts on the app's form, as the file names it."""

    node_id: str
    widget: str
    height: float | None = None  # the editor's height for a text box, in pixels


@dataclass(frozen=True)
class UiMarkings:
    """What the UI file marks for publishing, beside the converted workflow. Empty for an API-format file."""

    linear_mode: bool = False
    inputs: tuple[AppModeInput, ...] = ()
    outputs: tuple[str, ...] = ()
    packs: Mapping[str, NodePack] = field(default_factory=dict)  # node type -> the pack that provides it
    model_sources: Mapping[str, str] = field(default_factory=dict)  # its nodes' properties.models (model_sources.py)
    model_hashes: Mapping[str, str] = field(default_factory=dict)  # the sha256 they declare (model_needs.py)
    problems: tuple[str, ...] = ()

    @property
    def has_app_mode_inputs(self) -> bool:
        return bool(self.inputs)


def _node_id(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, str) and 0 < len(value) <= MAX_NAME_LENGTH):
        return str(value)
    return None


def _height(options: object) -> float | None:
    height = options.get("height") if isinstance(options, Mapping) else None
    return float(height) if isinstance(height, int | float) and not isinstance(height, bool) else None


def _read_inputs(raw: object, problems: list[str]) -> list[AppModeInput]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append(f"App Mode's inputs (extra.linearData.inputs) must be an array, got {short_repr(raw)}")
        return []
    found: list[AppModeInput] = []
    for index, entry in enumerate(raw[:MAX_APP_MODE_ENTRIES]):
        node_id = _node_id(entry[0]) if isinstance(entry, list) and len(entry) in (2, 3) else None
        widget = entry[1] if node_id is not None else None
        if node_id is None or not isinstance(widget, str) or not 0 < len(widget) <= MAX_NAME_LENGTH:
            problems.append(f"App Mode input #{index + 1} {short_repr(entry)} is not [node id, widget name] or "
                            "[node id, widget name, {options}]; it is left out")
            continue
        found.append(AppModeInput(node_id, widget, _height(entry[2]) if len(entry) == 3 else None))
    if len(raw) > MAX_APP_MODE_ENTRIES:
        problems.append(f"App Mode lists {len(raw)} inputs; the first {MAX_APP_MODE_ENTRIES} are read")
    return found


def _read_outputs(raw: object, problems: list[str]) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append(f"App Mode's outputs (extra.linearData.outputs) must be an array of node ids, got "
                        f"{short_repr(raw)}")
        return []
    found: list[str] = []
    for entry in raw[:MAX_APP_MODE_ENTRIES]:
        node_id = _node_id(entry)
        if node_id is None:
            problems.append(f"App Mode output {short_repr(entry)} is not a node id; it is left out")
        elif node_id not in found:
            found.append(node_id)
    return found


def _primitive_targets(data: Mapping[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """PrimitiveNode id -> the (node id, widget) pairs it feeds: the editor copies its value into each."""
    nodes = {str(n.get("id")): n for n in data.get("nodes") or () if isinstance(n, Mapping)}
    links = data.get("links")
    by_id: dict[int, tuple[str, object]] = {}  # read leniently, as the converter does: ids that are no int are skipped
    for link in links if isinstance(links, list) else ():
        if isinstance(link, list) and len(link) >= 5 and isinstance(link[0], int):
            by_id[link[0]] = (str(link[3]), link[4])
        elif isinstance(link, Mapping) and isinstance(link.get("id"), int):
            by_id[link["id"]] = (str(link.get("target_id")), link.get("target_slot"))
    targets: dict[str, list[tuple[str, str]]] = {}
    for node_id, node in nodes.items():
        if node.get("type") != "PrimitiveNode":
            continue
        outputs = node.get("outputs")
        first = outputs[0] if isinstance(outputs, list) and outputs and isinstance(outputs[0], Mapping) else {}
        fed = first.get("links")
        for link_id in fed if isinstance(fed, list) else ():
            target_id, slot = by_id.get(link_id, ("", None)) if isinstance(link_id, int) else ("", None)
            target = nodes.get(target_id)
            widget = widget_name_at(target, slot) if target is not None else None
            if widget is not None:
                targets.setdefault(node_id, []).append((target_id, widget))
    return targets


def _through_primitives(entries: list[AppModeInput], data: Mapping[str, Any]) -> list[AppModeInput]:
    primitives = _primitive_targets(data)
    resolved: list[AppModeInput] = []
    for entry in entries:
        fed = primitives.get(entry.node_id)
        if fed:
            resolved.extend(AppModeInput(target, widget, entry.height) for target, widget in fed)
        else:
            resolved.append(entry)
    unique: dict[tuple[str, str], AppModeInput] = {}
    for entry in resolved:
        unique.setdefault((entry.node_id, entry.widget), entry)
    return list(unique.values())


def _widget_id(entry: AppModeInput, workflow_id: object) -> AppModeInput:
    """An entry written with a widget id (``<workflow id>:<node id>:<name>``) as a node id and widget name."""
    parts = entry.node_id.split(":")
    if len(parts) == 3 and all(parts) and (parts[0] == workflow_id or _UUID.match(parts[0])):
        return AppModeInput(unquote(parts[1]), unquote(parts[2]), entry.height)
    return entry


def _through_subgraphs(entries: list[AppModeInput], data: Mapping[str, Any], problems: list[str]) -> list[AppModeInput]:
    definitions = subgraph_definitions(data)
    top = {str(n.get("id")): n for n in data.get("nodes") or () if isinstance(n, Mapping)}
    resolved: list[AppModeInput] = []
    for entry in (_widget_id(e, data.get("id")) for e in entries):
        node = top.get(entry.node_id)
        definition = definitions.get(str(node.get("type"))) if node is not None else None
        where = f"App Mode input [{entry.node_id}, {short_repr(entry.widget)}]"
        if node is not None and definition is not None:
            targets = promoted_targets(node, entry.widget, entry.node_id, definitions)
            if not targets:
                problems.append(f"{where}: node {entry.node_id} is the subgraph {short_repr(definition.get('name'))}, "
                                f"which shows no widget {short_repr(entry.widget)}; it is left out")
        elif node is None and ":" not in entry.node_id and definitions:
            targets = instances_feeding(data, entry.node_id, entry.widget, definitions)
            if len(targets) > 1:
                problems.append(f"{where}: node {entry.node_id} inside a subgraph is shown by several instances "
                                f"({', '.join(t[0].split(':')[0] for t in targets)}); it is left out, as the editor "
                                "leaves it out")
                continue
            targets = targets or [(entry.node_id, entry.widget)]
        else:
            targets = [(entry.node_id, entry.widget)]
        resolved += [AppModeInput(node_id, widget, entry.height) for node_id, widget in targets]
    return resolved


def _read_packs(data: Mapping[str, Any]) -> dict[str, NodePack]:
    packs: dict[str, NodePack] = {}
    for node in data.get("nodes") or ():
        if isinstance(node, Mapping) and isinstance(node.get("type"), str) and (pack := pack_of(node)):
            packs.setdefault(node["type"], pack)
    return packs


def read_ui_markings(data: object) -> UiMarkings:
    """The markings of a UI-format file (App Mode, node packs, model sources); empty ones for anything else."""
    if detect_format(data) != "ui" or not isinstance(data, Mapping):
        return UiMarkings()
    extra = data.get("extra")
    extra = extra if isinstance(extra, Mapping) else {}
    linear = extra.get("linearData")
    problems: list[str] = []
    if linear is not None and not isinstance(linear, Mapping):
        problems.append(f"App Mode's data (extra.linearData) must be an object, got {short_repr(linear)}")
    linear = linear if isinstance(linear, Mapping) else {}
    inputs = _through_primitives(_through_subgraphs(_read_inputs(linear.get("inputs"), problems), data, problems), data)
    return UiMarkings(
        linear_mode=extra.get("linearMode") is True,
        inputs=tuple(inputs),
        outputs=tuple(_read_outputs(linear.get("outputs"), problems)),
        packs=_read_packs(data),
        model_sources=declared_sources(data),
        model_hashes=declared_hashes(data),
        problems=tuple(problems),
    )


def load_marked_workflow(source: WorkflowSource, catalog: NodeCatalog) -> tuple[Workflow, UiMarkings]:
    """The API-format workflow (a UI-format file converted) and what the file marks for publishing."""
    data = _read_source(source)
    return load_any_workflow(data, catalog), read_ui_markings(data)


def unresolved_markings(markings: UiMarkings, workflow: Workflow, inputs: set[tuple[str, str]],
                        outputs: set[str]) -> list[str]:
    """App Mode entries that name no input or output the app can publish (`inputs`: (node id, input name) of the
    candidates; `outputs`: the output nodes), each saying why; with the entries that could not be read."""
    problems = list(markings.problems)
    for entry in markings.inputs:
        where = f"App Mode input [{entry.node_id}, {short_repr(entry.widget)}]"
        if entry.node_id not in workflow:
            problems.append(f"{where}: node {entry.node_id} is not in the converted workflow (a muted, bypassed or "
                            "editor-only node?); it is left out")
        elif (entry.node_id, entry.widget) not in inputs:
            problems.append(f"{where}: node {entry.node_id} ({workflow.class_type(entry.node_id)}) has no input "
                            f"{short_repr(entry.widget)} that takes a value (an editor-only control, or an input fed "
                            "by a link); it is left out")
    for node_id in markings.outputs:
        if node_id not in outputs:
            problems.append(f"App Mode output {node_id} is not an output node of the converted workflow; it is left "
                            "out")
    return problems
