"""Legacy group nodes (``extra.groupNodes``) read as subgraphs, so that the converter expands them the same way.

A group node's type is ``workflow>Name`` (``workflow/Name`` before frontend 1.2; the editor renames it on load).
Its definition lists the inner nodes (their place in the list is their id: the frontend queues them as
``group:index``), the links between them ``[origin index, origin slot, target index, target slot, ...]`` and
which outputs are used outside (``external``). The group node's own inputs, widgets and outputs are made by the
frontend's GroupNodeConfig: this module makes them the same way (names, order, hidden outputs) and turns them
into a :class:`~publisher.subgraphs.Subgraph` whose inputs are the group node's inputs and widgets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .node_schema import InputSpec, NodeCatalog
from .subgraphs import INPUT_NODE_ID, Subgraph, SubgraphInput
from .ui_shape import UiLink, is_int

GROUP_NODE_PREFIXES = ("workflow>", "workflow/")
SEED_NAMES = ("seed", "noise_seed")
_UNSUPPORTED_INSIDE = ("PrimitiveNode", "Reroute")


class GroupNodeError(ValueError):
    """What keeps a group node definition from being expanded (said when a node of that type is used)."""


def group_name(kind: str) -> str | None:
    """The group node's name when `kind` is a group node type name."""
    for prefix in GROUP_NODE_PREFIXES:
        if kind.startswith(prefix):
            return kind[len(prefix):]
    return None


def read_group_definitions(data: Mapping[str, Any]) -> dict[str, object]:
    extra = data.get("extra")
    group_nodes = extra.get("groupNodes") if isinstance(extra, Mapping) else None
    return {str(name): value for name, value in group_nodes.items()} if isinstance(group_nodes, Mapping) else {}


class _Builder:
    """GroupNodeConfig.registerType, for what the prompt needs."""

    def __init__(self, name: str, definition: Mapping[str, Any], catalog: NodeCatalog) -> None:
        self.name, self.catalog = name, catalog
        raw_nodes = definition.get("nodes")
        if not isinstance(raw_nodes, list) or not all(isinstance(node, Mapping) for node in raw_nodes):
            raise GroupNodeError("its definition has no list of nodes")
        self.raw_nodes: list[Mapping[str, Any]] = raw_nodes
        self.config = definition.get("config") if isinstance(definition.get("config"), Mapping) else {}
        self.links_to: dict[tuple[int, int], tuple[int, int]] = {}
        self.links_from: set[tuple[int, int]] = set()
        for link in definition.get("links") or ():
            if isinstance(link, list) and len(link) >= 4 and all(is_int(v) for v in link[1:4]) and is_int(link[0]):
                self.links_to[(link[2], link[3])] = (link[0], link[1])
                self.links_from.add((link[0], link[1]))
        self.external = {(entry[0], entry[1]) for entry in definition.get("external") or ()
                         if isinstance(entry, list) and len(entry) >= 2}
        self.names: dict[str, int] = {}
        self.inputs: list[SubgraphInput] = []
        self.links: dict[int, UiLink | str] = {}
        self.node_inputs: dict[int, list[dict[str, Any]]] = {}

    def _node_config(self, index: int) -> Mapping[str, Any]:
        found = self.config.get(str(index)) if isinstance(self.config, Mapping) else None
        return found if isinstance(found, Mapping) else {}

    def _input_name(self, index: int, node: Mapping[str, Any], name: str) -> str:
        """GroupNodeConfig.getInputConfig: a name used twice gets the node's title in front (then a count)."""
        configured = self._node_config(index).get("input")
        custom = configured.get(name) if isinstance(configured, Mapping) else None
        label = next((entry.get("label") for entry in node.get("inputs") or ()
                      if isinstance(entry, Mapping) and entry.get("name") == name), None)
        chosen = (custom.get("name") if isinstance(custom, Mapping) else None) or label or name
        key = chosen
        if chosen in self.names:
            prefix = f"{node.get('title') or node['type']} "
            key = chosen = f"{prefix}{name}"
            if chosen in self.names:
                chosen = f"{prefix}{self.names[chosen]} {name}"
        self.names[key] = self.names.get(key, 1) + 1
        return str(chosen)

    def _link(self, origin: str, slot: int, target: int, spec: InputSpec, widget: bool) -> None:
        link_id = len(self.links) + 1
        self.links[link_id] = UiLink(origin, slot)
        entry: dict[str, Any] = {"name": spec.name, "type": spec.type, "link": link_id}
        if widget:
            entry["widget"] = {"name": spec.name}
        self.node_inputs.setdefault(target, []).append(entry)

    def _group_input(self, index: int, node: Mapping[str, Any], spec: InputSpec, widget: bool) -> None:
        name = self._input_name(index, node, spec.name)
        taken = 1
        if widget and spec.type == "INT" and (spec.options.get("control_after_generate") or spec.name in SEED_NAMES):
            taken = 2  # the group node's widget gets a "control after generate" value too
        self.inputs.append(SubgraphInput(name, widget, taken))
        self._link(INPUT_NODE_ID, len(self.inputs) - 1, index, spec, widget)

    def _inner(self, index: int, spec: InputSpec, target_slot: int, widget: bool) -> bool:
        origin = self.links_to.get((index, target_slot))
        if origin is None:
            return False
        self._link(str(origin[0]), origin[1], index, spec, widget)
        return True

    def build(self) -> Subgraph:
        deferred = []
        for index, node in enumerate(self.raw_nodes):
            kind = node.get("type")
            if kind in _UNSUPPORTED_INSIDE or (isinstance(kind, str) and group_name(kind) is not None):
                raise GroupNodeError(f"it holds a {kind}, which is not converted inside group nodes yet")
            schema = self.catalog.get(str(kind))
            if schema is None:
                raise GroupNodeError(f"it holds node type {str(kind)[:80]!r}, which is not installed on this engine")
            saved = [entry for entry in node.get("inputs") or () if isinstance(entry, Mapping)]
            ordered = sorted(schema.inputs, key=lambda spec: not spec.required)
            converted = []
            for spec in (spec for spec in ordered if spec.is_widget):
                at = next((i for i, entry in enumerate(saved) if entry.get("name") == spec.name
                           and isinstance(entry.get("widget"), Mapping)
                           and entry["widget"].get("name") == spec.name), None)
                if at is not None:
                    converted.append((at, spec))
                else:
                    self._group_input(index, node, spec, widget=True)
            slots = [spec for spec in ordered if not spec.is_widget]
            for slot, spec in enumerate(slots):
                if not self._inner(index, spec, slot, widget=False):
                    configured = self._node_config(index).get("input")
                    custom = configured.get(spec.name) if isinstance(configured, Mapping) else None
                    if not (isinstance(custom, Mapping) and custom.get("visible") is False):
                        self._group_input(index, node, spec, widget=False)
            # The frontend sorts the converted widgets' places as text ("10" before "2"), after all nodes' inputs.
            converted.sort(key=lambda item: str(item[0]))
            deferred.append((index, node, len(slots), [spec for _, spec in converted]))
        for index, node, first, specs in deferred:
            for offset, spec in enumerate(specs):
                if not self._inner(index, spec, first + offset, widget=True):
                    self._group_input(index, node, spec, widget=True)
        return Subgraph(id=self.name, index=-1, name=self.name, nodes=self._nodes(), links=self.links,
                        input_node_id=INPUT_NODE_ID, inputs=tuple(self.inputs), output_links=self._outputs())

    def _nodes(self) -> dict[str, Mapping[str, Any]]:
        nodes: dict[str, Mapping[str, Any]] = {}
        for index, node in enumerate(self.raw_nodes):
            nodes[str(index)] = {**node, "id": index, "inputs": self.node_inputs.get(index, [])}
        return nodes

    def _outputs(self) -> tuple[int | None, ...]:
        """The group node's outputs: each inner output not used only inside, unless hidden (processNodeOutputs)."""
        found: list[int | None] = []
        for index, node in enumerate(self.raw_nodes):
            schema = self.catalog[str(node["type"])]
            configured = self._node_config(index).get("output")
            for slot in range(len(schema.outputs)):
                custom = configured.get(str(slot)) if isinstance(configured, Mapping) else None
                inside_only = (index, slot) in self.links_from and (index, slot) not in self.external
                visible = custom.get("visible") if isinstance(custom, Mapping) and "visible" in custom else None
                if not (visible if visible is not None else not inside_only):
                    continue
                link_id = 1_000_000 + len(found)
                self.links[link_id] = UiLink(str(index), slot)
                found.append(link_id)
        return tuple(found)


def group_subgraphs(data: Mapping[str, Any], catalog: NodeCatalog) -> tuple[dict[str, Subgraph], dict[str, str]]:
    """The workflow's group node definitions as subgraphs by type name (both namings), and by name what keeps
    the others from being expanded."""
    subgraphs: dict[str, Subgraph] = {}
    problems: dict[str, str] = {}
    for name, definition in read_group_definitions(data).items():
        try:
            if not isinstance(definition, Mapping):
                raise GroupNodeError("its definition in 'extra.groupNodes' is not an object")
            subgraph = _Builder(name, definition, catalog).build()
        except GroupNodeError as exc:
            problems[name] = str(exc)
            continue
        for prefix in GROUP_NODE_PREFIXES:
            subgraphs[prefix + name] = subgraph
    return subgraphs, problems
