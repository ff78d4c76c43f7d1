"""Subgraph definitions of a UI-format workflow (``definitions.subgraphs``), read for the converter.

A subgraph is a graph of its own (nodes and links) that nodes of the workflow use as their type (its id).
Inside it, links from the subgraph's input node (id -10) stand for the instance's inputs, by slot, and the
subgraph's ``outputs[i].linkIds`` say what feeds the instance's output ``i`` (links to its output node, -20).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .ui_shape import UiLink, found, is_int, read_links, read_nodes
from .workflow import MAX_NAME_LENGTH, WorkflowFormatError, json_type, short_repr

INPUT_NODE_ID = "-10"  # the subgraph's input node, as the editor saves it
_EXPORT = "or in ComfyUI use Workflow > Export (API) and upload that file"


@dataclass(frozen=True)
class SubgraphInput:
    name: str
    is_widget: bool  # it feeds an inner widget, so the instance shows (promotes) a widget of this name
    values: int = 1  # how many of the instance's widgets_values it takes (a seed's control value is one more)
    type: object = None


@dataclass(frozen=True)
class Subgraph:
    id: str
    index: int  # its place in 'definitions.subgraphs', which decides whether nested instances keep their values
    name: str
    nodes: dict[str, Mapping[str, Any]]
    links: dict[int, UiLink | str]
    input_node_id: str
    inputs: tuple[SubgraphInput, ...]  # an instance's input slots, in order
    output_links: tuple[int | None, ...]  # per output slot of an instance, the first link that feeds it
    output_types: tuple[object, ...] = ()


def _name(definition: Mapping[str, Any]) -> str:
    name = definition.get("name")
    return (name if isinstance(name, str) and name else str(definition.get("id")))[:80]


def _output_links(definition: Mapping[str, Any]) -> tuple[int | None, ...]:
    outputs = definition.get("outputs")
    found: list[int | None] = []
    for output in outputs if isinstance(outputs, list) else ():
        link_ids = output.get("linkIds") if isinstance(output, Mapping) else None
        first = link_ids[0] if isinstance(link_ids, list) and link_ids else None
        found.append(first if is_int(first) else None)
    return tuple(found)


def _feeds_a_widget(link_ids: object, raw_links: object, nodes: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether one of these links of the subgraph's input node goes to an input that has a widget."""
    wanted = set(link_ids) if isinstance(link_ids, list) else set()
    for link in raw_links if isinstance(raw_links, list) else ():
        if isinstance(link, Mapping):
            link_id, target, slot = link.get("id"), link.get("target_id"), link.get("target_slot")
        elif isinstance(link, list) and len(link) >= 5:
            link_id, target, slot = link[0], link[3], link[4]
        else:
            continue
        node = nodes.get(str(target)) if link_id in wanted and is_int(slot) else None
        entries = node.get("inputs") if node is not None else None
        if isinstance(entries, list) and 0 <= slot < len(entries) and isinstance(entries[slot].get("widget"), Mapping):
            return True
    return False


def _inputs(definition: Mapping[str, Any], nodes: Mapping[str, Mapping[str, Any]]) -> tuple[SubgraphInput, ...]:
    raw = definition.get("inputs")
    return tuple(SubgraphInput(str(entry.get("name"))[:MAX_NAME_LENGTH],
                               _feeds_a_widget(entry.get("linkIds"), definition.get("links"), nodes),
                               type=entry.get("type"))
                 for entry in raw if isinstance(entry, Mapping)) if isinstance(raw, list) else ()


def _output_types(definition: Mapping[str, Any]) -> tuple[object, ...]:
    outputs = definition.get("outputs")
    return tuple(output.get("type") if isinstance(output, Mapping) else None
                 for output in (outputs if isinstance(outputs, list) else ()))


def _subgraph(index: int, definition: object) -> Subgraph:
    if not isinstance(definition, Mapping):
        raise WorkflowFormatError(f"'definitions.subgraphs[{index}]' must be an object (a subgraph), got "
                                  f"{json_type(definition)}; open the workflow in ComfyUI and save it again, {_EXPORT}")
    sub_id = definition.get("id")
    if not isinstance(sub_id, str) or not sub_id:
        raise WorkflowFormatError(f"'definitions.subgraphs[{index}]' has no usable 'id': expected the subgraph's "
                                  f"id (a string), got {short_repr(sub_id)}; open the workflow in ComfyUI and save "
                                  f"it again, {_EXPORT}")
    try:
        nodes = read_nodes(definition)
    except WorkflowFormatError as exc:
        raise WorkflowFormatError(f"In the subgraph '{_name(definition)}': {exc}") from None
    input_node = definition.get("inputNode")
    input_id = input_node.get("id") if isinstance(input_node, Mapping) else None
    return Subgraph(id=sub_id, index=index, name=_name(definition), nodes=nodes,
                    links=read_links(definition.get("links")),
                    input_node_id=str(input_id) if is_int(input_id) else INPUT_NODE_ID,
                    inputs=_inputs(definition, nodes),
                    output_links=_output_links(definition), output_types=_output_types(definition))


def read_subgraphs(data: Mapping[str, Any]) -> dict[str, Subgraph]:
    """The workflow's subgraph definitions by id, each with its nodes checked like the workflow's own."""
    definitions = data.get("definitions")
    raw = definitions.get("subgraphs") if isinstance(definitions, Mapping) else None
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise WorkflowFormatError(f"'definitions.subgraphs' must be an array of subgraphs, got {found(raw)}; "
                                  f"open the workflow in ComfyUI and save it again, {_EXPORT}")
    subgraphs: dict[str, Subgraph] = {}
    for index, definition in enumerate(raw):
        subgraph = _subgraph(index, definition)
        subgraphs.setdefault(subgraph.id, subgraph)
    return subgraphs


def instance_input(instance: Mapping[str, Any], subgraph: Subgraph, slot: int) -> Mapping[str, Any] | None:
    """The saved entry of an instance's input `slot`. The editor makes an instance's inputs from the subgraph's
    and saves only some (unlinked widget inputs are left out), so the saved entry is found by name."""
    if not 0 <= slot < len(subgraph.inputs):
        return None
    name = subgraph.inputs[slot].name
    return next((entry for entry in instance.get("inputs") or () if entry.get("name") == name), None)


def instance_widget_values(instance: Mapping[str, Any], subgraph: Subgraph) -> dict[str, Any]:
    """The values of a subgraph instance's own (promoted) widgets, by widget name.

    As the editor restores them: with ``properties.proxyWidgets`` (frontend 1.28+), ``widgets_values[i]``
    belongs to entry ``i``, and only entries ``["-1", name]`` are the instance's own widgets (the others
    show an inner node's widget, whose value stays in that node). Without it, the values follow the
    subgraph's inputs that feed a widget, in order.
    """
    values = instance.get("widgets_values")
    if not isinstance(values, list):
        return {}
    properties = instance.get("properties")
    proxies = properties.get("proxyWidgets") if isinstance(properties, Mapping) else None
    if isinstance(proxies, list):
        return {str(entry[1]): value for entry, value in zip(proxies, values, strict=False)
                if isinstance(entry, list) and len(entry) == 2 and str(entry[0]) == "-1" and value is not None}
    found, at = {}, 0
    for entry in subgraph.inputs:
        if entry.is_widget:
            if at < len(values) and values[at] is not None:
                found[entry.name] = values[at]
            at += entry.values
    return found
