"""Where a widget shown on a subgraph instance (a promoted widget) puts its value: an input of an inner node.

The editor shows two kinds of widgets on an instance, both named by the widget's name:

- a subgraph input that feeds an inner widget (its value goes, through the links of the subgraph's input node, to
  every inner input that input is linked to; an inner subgraph instance passes it on the same way);
- with ``properties.proxyWidgets`` (frontend 1.28+), an entry ``[inner node id, widget name]`` shows that inner
  node's own widget (entries ``["-1", name]`` are subgraph inputs).

Expanded, an inner node's id is ``instance:inner`` (deeper ``a:b:c``), as the converter and the frontend write it.
Read leniently: what cannot be followed gives no target.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_DEPTH = 32  # subgraphs inside subgraphs; a definition that contains itself must not loop

Target = tuple[str, str]  # (expanded node id, input name)


def subgraph_definitions(data: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    definitions = data.get("definitions")
    raw = definitions.get("subgraphs") if isinstance(definitions, Mapping) else None
    found: dict[str, Mapping[str, Any]] = {}
    for definition in raw if isinstance(raw, list) else ():
        if isinstance(definition, Mapping) and isinstance(definition.get("id"), str):
            found.setdefault(definition["id"], definition)
    return found


def _nodes(graph: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    nodes = graph.get("nodes")
    return {str(n.get("id")): n for n in nodes if isinstance(n, Mapping)} if isinstance(nodes, list) else {}


def _link_ends(definition: Mapping[str, Any]) -> list[tuple[str, object, str, object]]:
    """(origin id, origin slot, target id, target slot) of each link of a subgraph (objects or arrays)."""
    ends = []
    links = definition.get("links")
    for link in links if isinstance(links, list) else ():
        if isinstance(link, Mapping):
            ends.append((str(link.get("origin_id")), link.get("origin_slot"), str(link.get("target_id")),
                         link.get("target_slot")))
        elif isinstance(link, list) and len(link) >= 5:
            ends.append((str(link[1]), link[2], str(link[3]), link[4]))
    return ends


def widget_name_at(node: Mapping[str, Any], slot: object) -> str | None:
    """The widget name of the input in `slot` (the input's own name when the editor wrote no widget)."""
    inputs = node.get("inputs")
    if not isinstance(slot, int) or not isinstance(inputs, list) or not 0 <= slot < len(inputs):
        return None
    entry = inputs[slot]
    if not isinstance(entry, Mapping):
        return None
    widget = entry.get("widget")
    name = widget.get("name") if isinstance(widget, Mapping) else entry.get("name")
    return name if isinstance(name, str) and name else None


def promoted_targets(instance: Mapping[str, Any], widget: str, path: str,
                     definitions: Mapping[str, Mapping[str, Any]], depth: int = 0) -> list[Target]:
    """The inner inputs the promoted widget `widget` of `instance` (expanded id `path`) feeds; empty when the
    instance is no subgraph instance or shows no such widget."""
    definition = definitions.get(str(instance.get("type")))
    if definition is None or depth > MAX_DEPTH:
        return []
    nodes = _nodes(definition)
    properties = instance.get("properties")
    proxies = properties.get("proxyWidgets") if isinstance(properties, Mapping) else None
    for entry in proxies if isinstance(proxies, list) else ():
        if isinstance(entry, list) and len(entry) == 2 and entry[1] == widget and str(entry[0]) != "-1":
            inner = nodes.get(str(entry[0]))
            if inner is None:
                return []
            deeper = promoted_targets(inner, widget, f"{path}:{entry[0]}", definitions, depth + 1)
            return deeper or [(f"{path}:{entry[0]}", widget)]
    inputs = definition.get("inputs")
    slot = next((i for i, entry in enumerate(inputs if isinstance(inputs, list) else ())
                 if isinstance(entry, Mapping) and entry.get("name") == widget), None)
    if slot is None:
        return []
    input_node = definition.get("inputNode")
    input_id = str(input_node.get("id")) if isinstance(input_node, Mapping) else "-10"
    targets: list[Target] = []
    for origin, origin_slot, target_id, target_slot in _link_ends(definition):
        target = nodes.get(target_id)
        name = widget_name_at(target, target_slot) if target is not None else None
        if origin != input_id or origin_slot != slot or target is None or name is None:
            continue
        inner_path = f"{path}:{target_id}"
        if str(target.get("type")) in definitions:  # an inner instance passes the value on to its own inside
            targets += promoted_targets(target, name, inner_path, definitions, depth + 1)
        else:
            targets.append((inner_path, name))
    return targets


def instances_feeding(data: Mapping[str, Any], inner_id: str, widget: str,
                      definitions: Mapping[str, Mapping[str, Any]]) -> list[Target]:
    """For an entry that names a node inside a subgraph by its own id (how App Mode wrote a promoted widget before
    it had widget ids): the expanded inputs of the top-level instances whose promoted widget feeds that node's
    `widget` directly."""
    found: list[Target] = []
    for node_id, node in _nodes(data).items():
        definition = definitions.get(str(node.get("type")))
        inputs = definition.get("inputs") if definition is not None else None
        for entry in inputs if isinstance(inputs, list) else ():
            name = entry.get("name") if isinstance(entry, Mapping) else None
            if isinstance(name, str) and (f"{node_id}:{inner_id}", widget) in promoted_targets(
                    node, name, node_id, {str(node.get("type")): definition}):  # one level, as the editor resolves it
                found.append((f"{node_id}:{inner_id}", widget))
    return found
