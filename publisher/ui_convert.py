"""Converting a ComfyUI UI-format workflow (what the editor saves) into the API-format prompt.

This mirrors the frontend's ``graphToPrompt`` (comfyui_frontend_package 1.32, bundled with ComfyUI
0.3.75), typed by the engine's own ``/object_info`` instead of the editor's live widgets:

- ``widgets_values`` fill the node's widget inputs in the engine's order (required, then optional).
  An INT widget gets one extra "control after generate" value after it when its spec says
  ``control_after_generate`` (or, without that key, when it is named seed / noise_seed); a COMBO
  with ``control_after_generate`` gets two (the control and its filter list). Those are skipped. An input the
  editor draws a widget of its own for (RecordAudio's recorder) takes one value too, and gets what that widget
  queues from a freshly loaded workflow.
- A linked input takes the link; links are followed through Reroute nodes and bypassed (mode 4)
  nodes (the bypassed node's input of the matching type), a PrimitiveNode's value becomes the
  literal. Muted (mode 2) nodes and virtual nodes (Note, MarkdownNote, ...) are left out, and a
  link to a node that is left out is dropped, as the frontend does.
- Subgraphs (``definitions.subgraphs``, :mod:`publisher.subgraphs`) are expanded as the frontend's
  ExecutableNodeDTO does: an instance's inside gets ids ``instance:inner`` (deeper ``a:b:c``), links
  from the subgraph's input node take what feeds the instance's input of that slot (or the value of
  the instance's promoted widget), an instance's output is what feeds the subgraph's output. A
  subgraph that contains itself is refused. Legacy group nodes are refused with the node named.
- A save node's ``filename_prefix`` gets the editor's ``%Name.widget%`` replacements (values of the saved graph);
  its ``%date:…%`` tokens stay, for each run to fill in (:mod:`publisher.frontend_values`). Saved numbers are
  kept as they are; a value a PrimitiveNode feeds is rounded by the target widget's options, as the editor's
  applyToGraph does by calling the widget's callback, after its own replacements when its "Run widget replace on
  values" property is on.
- A multiline text widget holds its value in a <textarea>, which reads CR LF and CR back as LF: so do its values.
- A text input whose option says ``dynamicPrompts`` gets the editor's dynamic prompts (comments, escapes) unless its
  value comes from a subgraph instance's widget (the editor queues those as they are); a text with a random
  ``{a|b}`` choice, or with a date to fill in, is kept and named in the node's ``_meta.per_run`` for each run.

The file's shape is checked first (:mod:`publisher.ui_shape`), so the conversion reads fields of known types.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .dynamic_prompts import fixed_prompt
from .frontend_values import (
    DATES,
    DYNAMIC,
    NOT_FOUND,
    PER_RUN,
    RUN_WIDGET_REPLACE,
    has_dates,
    has_dynamic_prompts,
    primitive_value,
    replace_node_references,
    replaced_inputs,
)
from .group_nodes import group_name, group_subgraphs
from .node_packs import MissingNodeTypesError, missing_type, pack_hint, pack_of, saved_with
from .node_schema import WIDGET_TYPES, InputSpec, NodeCatalog, NodeSchema
from .subgraphs import Subgraph, instance_input, instance_widget_values, read_subgraphs
from .ui_shape import UiLink, read_links, read_nodes
from .workflow import (
    Workflow,
    WorkflowFormatError,
    WorkflowSource,
    _read_source,
    detect_format,
    load_workflow,
    node_sort_key,
    short_repr,
)

MUTED, BYPASSED = 2, 4  # LGraphEventMode.NEVER and .BYPASS
NOTE_TYPES = frozenset({"Note", "MarkdownNote"})
SEED_NAMES = ("seed", "noise_seed")
SUBGRAPH_TYPE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
MAX_EXPANDED_NODES = 20_000  # subgraphs inside subgraphs multiply: a small file must not expand without end
_EXPORT = "or in ComfyUI use Workflow > Export (API) and upload that file"

# What resolving an input gives: a link to a node that will be in the prompt, or a literal.
_Resolved = tuple[str, int] | tuple[None, Any]


def _valid_connection(a: object, b: object) -> bool:
    """LiteGraph.isValidConnection: "*" and "" match anything, "A,B" matches A or B."""
    a = "" if a in (None, "*") else str(a).lower()
    b = "" if b in (None, "*") else str(b).lower()
    if not a or not b or a == b:
        return True
    return bool(set(a.split(",")) & set(b.split(",")))


def _js_truthy(value: object) -> bool:
    return value not in (None, False, 0, "") and not (isinstance(value, float) and math.isnan(value))


def _control_values(spec: InputSpec) -> int:
    """How many "control after generate" values the editor stores after this widget's value."""
    flag = spec.options.get("control_after_generate")
    if spec.type == "INT":
        # The frontend reads `control_after_generate ?? name in (seed, noise_seed)`.
        return 1 if (flag if flag is not None else spec.name in SEED_NAMES) else 0
    if spec.type == "COMBO" and flag:
        return 2  # the control and its filter-list text
    return 0


def _fits(spec: InputSpec, value: object) -> bool:
    if spec.type in ("INT", "FLOAT"):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return ok and (spec.type == "FLOAT" or float(value).is_integer())  # type: ignore[arg-type]
    if spec.type == "BOOLEAN":
        return isinstance(value, bool)
    if spec.type == "STRING":
        return isinstance(value, str)
    return not isinstance(value, Mapping)


_UPLOAD_FLAGS = ("image_upload", "video_upload", "animated_image_upload")
# Input types the editor draws a widget of its own for (an extension's getCustomWidgets), each taking a place in
# widgets_values, with what it queues from a freshly loaded workflow: RecordAudio's recorder serializes the file it
# recorded in this session, "" before any recording (the saved value is not read back).
EDITOR_WIDGET_VALUES: Mapping[str, object] = {"AUDIO_RECORD": ""}


def _widget_layout(schema: NodeSchema, count: int) -> list[tuple[InputSpec | None, int]]:
    """(spec, values it takes) in widgets_values order; a None spec is a value to skip.

    The editor appends an "upload" widget after the required inputs when one is an image/video
    upload combo. Workflows saved before forceInput inputs lost their widget still hold a value
    for them: the frontend (migrateWidgetsValues) recognises that by the count, and so does this.
    """
    def layout(legacy: bool) -> list[tuple[InputSpec | None, int]]:
        slots: list[tuple[InputSpec | None, int]] = []
        for required in (True, False):
            for spec in schema.inputs:
                if spec.required != required:
                    continue
                if spec.is_widget:
                    slots.append((spec, 1 + _control_values(spec)))
                elif spec.type in EDITOR_WIDGET_VALUES:
                    slots.append((spec, 1))
                elif legacy and spec.force_input and spec.type in WIDGET_TYPES:
                    slots.append((None, 1 + _control_values(spec)))
            if required and any(s.required and s.type == "COMBO" and any(s.options.get(f) is True
                                                                          for f in _UPLOAD_FLAGS)
                                for s in schema.inputs):
                slots.append((None, 1))
        return slots

    current, legacy = layout(False), layout(True)
    if len(legacy) != len(current) and sum(n for _, n in legacy) == count:
        return legacy
    return current


def _as_widget_holds(spec: InputSpec | None, value: object) -> object:
    """A multiline text widget is a <textarea>: its value has every CR LF and lone CR read back as LF."""
    if spec is not None and spec.type == "STRING" and spec.options.get("multiline") is True and isinstance(value, str):
        return value.replace("\r\n", "\n").replace("\r", "\n")
    return value


def _checked(label: str, node: Mapping[str, Any], schema: NodeSchema, spec: InputSpec, value: object,
             position: int | None = None, counts: tuple[int, int] | None = None) -> object:
    """`value` when it fits `spec`; else a refusal naming the node (`label`), the input and the value, and (`counts`:
    saved, expected) how many values the file holds against how many this engine's version of the node takes."""
    if not _fits(spec, value):
        at = f", saved as widgets_values[{position}]" if position is not None else ""
        versions = ""
        if counts is not None and counts[0] != counts[1]:
            names = ", ".join(s.name for s in schema.widget_inputs)[:300]
            versions = (f"; the file saved {counts[0]} widget values where this engine's {schema.class_type} takes "
                        f"{counts[1]} (its widgets: {names})")
        origin = saved_with(node)
        fix = "install that version of the pack here, or open" if pack_of(node) else "open"
        raise WorkflowFormatError(
            f"{label}: widget value {short_repr(value)} does not fit input '{spec.name}' ({spec.type}){at}"
            f"{versions}; the node's widgets do not line up with this engine's {schema.class_type} (saved with "
            f"{origin or 'another version of it?'}): {fix} and save the workflow in ComfyUI on this engine, {_EXPORT}"
        )
    return value


def _widget_values(label: str, node: Mapping[str, Any], schema: NodeSchema) -> dict[str, Any]:
    raw = node.get("widgets_values")
    values: dict[str, Any] = {}
    if isinstance(raw, Mapping):  # some custom nodes save {input name: value}
        return {spec.name: _as_widget_holds(spec, _checked(label, node, schema, spec, raw[spec.name]))
                for spec in schema.widget_inputs if spec.name in raw}
    raw = raw if isinstance(raw, list) else []
    index = 0
    layout = _widget_layout(schema, len(raw))
    counts = (len(raw), sum(taken for _, taken in layout))
    for spec, taken in layout:
        if spec is not None and spec.type in EDITOR_WIDGET_VALUES:
            values[spec.name] = EDITOR_WIDGET_VALUES[spec.type]
        elif spec is not None:
            if index < len(raw):
                values[spec.name] = _as_widget_holds(spec, _checked(label, node, schema, spec, raw[index], index,
                                                                    counts))
            elif spec.default is not None or spec.choices:  # added since the workflow was saved
                values[spec.name] = spec.default if spec.default is not None else spec.choices[0]
        index += taken
    return values


@dataclass(frozen=True)
class _Graph:
    """The workflow's graph, or the inside of one subgraph instance (its nodes get ids `instance:inner`)."""
    path: tuple[str, ...]  # the ids of the instances from the workflow down to this graph
    nodes: Mapping[str, Mapping[str, Any]]
    links: Mapping[int, UiLink | str]
    instance: Mapping[str, Any] | None = None  # the subgraph node whose inside this is
    parent: _Graph | None = None
    subgraph: Subgraph | None = None

    def node_id(self, node: Mapping[str, Any]) -> str:
        return ":".join((*self.path, str(node["id"])))

    def label(self, node: Mapping[str, Any]) -> str:
        return f"node {self.node_id(node)} ({node.get('type')})"

    def inside(self, instance: Mapping[str, Any], subgraph: Subgraph) -> _Graph:
        return _Graph((*self.path, str(instance["id"])), subgraph.nodes, subgraph.links, instance, self, subgraph)


class _Converter:
    def __init__(self, data: Mapping[str, Any], catalog: NodeCatalog) -> None:
        self.catalog = catalog
        self.root = _Graph((), read_nodes(data), read_links(data.get("links")))
        groups, self.group_problems = group_subgraphs(data, catalog)
        self.subgraphs = {**groups, **read_subgraphs(data)}  # legacy group nodes expand like subgraphs
        self.group_types = frozenset(groups)

    def convert(self) -> dict[str, dict[str, Any]]:
        members = self._expand()
        self._refuse_unsupported(members)
        kept = {graph.node_id(node): (graph, node) for graph, node in members if self._kept(node)}
        prompt = {nid: self._node(*kept[nid]) for nid in sorted(kept, key=node_sort_key)}
        for entry in prompt.values():  # the frontend drops links to nodes that are not in the prompt
            inputs = entry["inputs"]
            for name, value in list(inputs.items()):
                if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and value[0] not in prompt:
                    del inputs[name]
        for node_id, name in replaced_inputs(prompt):  # %Name.widget% refers to the saved graph; dates stay per run
            prompt[node_id]["inputs"][name] = replace_node_references(prompt[node_id]["inputs"][name], self._widget)
        return prompt

    @staticmethod
    def _primitive_feeding(graph: _Graph, entry: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The PrimitiveNode this input's link comes straight from (its applyToGraph sets the widget), if any."""
        link = graph.links.get(entry.get("link"))  # type: ignore[arg-type]
        origin = graph.nodes.get(str(link.origin_id)) if isinstance(link, UiLink) else None
        return origin if origin is not None and origin.get("type") == "PrimitiveNode" else None

    def _all_nodes(self, graph: _Graph, depth: int = 0) -> Iterator[tuple[_Graph, Mapping[str, Any]]]:
        """Every node as the frontend's collectAllNodes lists them: a subgraph's nodes before its instance."""
        for node in graph.nodes.values():
            subgraph = self.subgraphs.get(node["type"])
            if subgraph is not None and depth < len(self.subgraphs):  # a subgraph in itself was refused already
                yield from self._all_nodes(graph.inside(node, subgraph), depth + 1)
            yield graph, node

    def _widget(self, node_name: str, widget: str) -> object:
        """The saved value of `widget` on the first node named `node_name` by its 'Node name for S&R' property,
        else by its title (applyTextReplacements); NOT_FOUND when there is none or it has no such widget."""
        nodes = list(self._all_nodes(self.root))
        for named in (self._search_name, self._title):
            found = next(((graph, node) for graph, node in nodes if named(node) == node_name), None)
            if found is not None:
                break
        else:
            return NOT_FOUND
        graph, node = found
        schema = self.catalog.get(str(node.get("type")))
        if schema is None:
            return NOT_FOUND
        try:
            values = _widget_values(graph.label(node), node, schema)
        except WorkflowFormatError:  # its values do not fit this engine's node: the frontend would not read them
            return NOT_FOUND
        for entry in node.get("inputs") or ():  # primitives set their widgets before the replacements are made
            spec = schema.input(str(entry.get("name")))
            primitive = self._primitive_feeding(graph, entry)
            values_saved = primitive.get("widgets_values") if primitive is not None else None
            if spec is not None and isinstance(values_saved, list) and values_saved:
                values[spec.name] = _as_widget_holds(spec, primitive_value(spec, values_saved[0]))
        return values.get(widget, NOT_FOUND)

    @staticmethod
    def _search_name(node: Mapping[str, Any]) -> object:
        properties = node.get("properties")
        return properties.get("Node name for S&R") if isinstance(properties, Mapping) else None

    def _title(self, node: Mapping[str, Any]) -> object:
        title = node.get("title")
        if isinstance(title, str) and title:
            return title
        schema = self.catalog.get(str(node.get("type")))
        return schema.display_name if schema is not None else None

    def _expand(self) -> list[tuple[_Graph, Mapping[str, Any]]]:
        """Every node with the graph it is in, subgraph instances replaced by their insides, nested ones too
        (SubgraphNode.getInnerNodes). The mode of an instance does not pass to its inside, as in the editor."""
        members: list[tuple[_Graph, Mapping[str, Any]]] = []
        pending: list[tuple[_Graph, tuple[tuple[str, str], ...]]] = [(self.root, ())]  # with (subgraph, instance)
        expanded = 0
        while pending:
            graph, around = pending.pop()
            for node in graph.nodes.values():
                expanded += 1
                if expanded > MAX_EXPANDED_NODES:  # instances count too: empty subgraphs can multiply as well
                    raise WorkflowFormatError(
                        f"This UI-format workflow has more than {MAX_EXPANDED_NODES} nodes once its subgraphs are "
                        f"expanded (subgraphs used inside subgraphs multiply); {_EXPORT}")
                subgraph = self.subgraphs.get(node["type"])
                if subgraph is None:
                    members.append((graph, node))
                    continue
                outer = next((instance for sub_id, instance in around if sub_id == subgraph.id), None)
                if outer is not None:
                    raise WorkflowFormatError(
                        f"This UI-format workflow cannot be converted: node {outer} is the subgraph "
                        f"'{subgraph.name}', which contains itself (node {graph.node_id(node)} inside it is that "
                        f"subgraph again), so it would never end; in ComfyUI remove that node from the subgraph, "
                        f"{_EXPORT}")
                pending.append((graph.inside(node, subgraph), (*around, (subgraph.id, graph.node_id(node)))))
        return members

    def _refuse_unsupported(self, members: list[tuple[_Graph, Mapping[str, Any]]]) -> None:
        problems = []
        missing: dict[str, list[Mapping[str, Any]]] = {}
        for graph, node in members:
            kind = node["type"]
            if node.get("mode") == MUTED:
                continue
            if SUBGRAPH_TYPE.match(kind) and kind not in self.catalog:  # the editor types an instance by its id
                problems.append(
                    f"{graph.label(node)} is a subgraph whose definition is missing from 'definitions.subgraphs'; "
                    f"open the workflow in ComfyUI and save it again, {_EXPORT}")
            elif kind not in self.catalog and (group := group_name(kind)) is not None:
                why = self.group_problems.get(group, "its definition is missing from 'extra.groupNodes'")
                problems.append(
                    f"{graph.label(node)} is a group node (the legacy group node '{group[:80]}'), which cannot be "
                    f"converted: {why}; in ComfyUI right-click it > Convert to nodes and save again, {_EXPORT}")
            elif kind not in self.catalog and not self._virtual(node) and node.get("mode") != BYPASSED:
                problems.append(f"{graph.label(node)} is not installed on this engine{pack_hint(node)}: install it, "
                                "or in ComfyUI use Workflow > Export (API) and upload that file")
                missing.setdefault(kind, []).append(node)
        if problems:
            message = "This UI-format workflow cannot be converted: " + "; ".join(problems)
            if missing:  # the caller can offer to install what is missing
                raise MissingNodeTypesError(message, [missing_type(kind, nodes) for kind, nodes in missing.items()])
            raise WorkflowFormatError(message)

    def _virtual(self, node: Mapping[str, Any]) -> bool:
        """Editor-only nodes: notes, reroutes, primitives, and unknown nodes wired to nothing (labels etc.)."""
        kind = node["type"]
        if kind in NOTE_TYPES or kind in ("Reroute", "PrimitiveNode"):
            return True
        if kind in self.catalog:
            return False
        linked_in = any(isinstance(i, Mapping) and i.get("link") is not None for i in node.get("inputs") or ())
        linked_out = any(isinstance(o, Mapping) and o.get("links") for o in node.get("outputs") or ())
        return not linked_in and not linked_out

    def _kept(self, node: Mapping[str, Any]) -> bool:
        return node.get("mode") not in (MUTED, BYPASSED) and not self._virtual(node)

    def _node(self, graph: _Graph, node: Mapping[str, Any]) -> dict[str, Any]:
        schema = self.catalog[node["type"]]
        inputs: dict[str, Any] = _widget_values(graph.label(node), node, schema)
        per_run: dict[str, list[str]] = {}
        promoted: set[str] = set()  # values of a subgraph instance's widget: the editor queues them as they are
        # (a legacy group node's widgets are its own: their values are serialized like any node's)
        in_group = graph.instance is not None and graph.instance.get("type") in self.group_types
        for slot, entry in enumerate(node.get("inputs") or ()):
            widget = entry.get("widget")
            name = entry.get("name") or (widget.get("name") if isinstance(widget, Mapping) else None)
            resolved = self._resolve_input(graph, node, slot)
            if name and resolved is not None:
                origin, value = resolved
                spec = schema.input(str(name))
                value = _as_widget_holds(spec, value) if origin is None else value
                primitive = self._primitive_feeding(graph, entry) if origin is None else None
                if primitive is not None and spec is not None:
                    value = self._primitive_replacements(primitive, value, per_run, str(name))
                    value = primitive_value(spec, value)  # the editor passes it through the widget's callback
                elif origin is None and not in_group:
                    promoted.add(str(name))
                inputs[str(name)] = [origin, value] if origin is not None else value
        for name, value in inputs.items():  # Comfy.DynamicPrompts: the widget's value, as it is serialized
            if isinstance(value, str) and name not in promoted and has_dynamic_prompts(schema.input(name)):
                try:
                    fixed = fixed_prompt(value) if DATES not in per_run.get(name, ()) else None
                except ValueError as exc:
                    raise WorkflowFormatError(f"{graph.label(node)}: input '{name}' {short_repr(value)}: {exc}; "
                                              "the editor could not queue it either") from None
                if fixed is None:
                    per_run.setdefault(name, []).append(DYNAMIC)
                else:
                    inputs[name] = fixed
        for name, value in inputs.items():  # the engine reads a list literal as a link unless wrapped
            if isinstance(value, list) and not (len(value) == 2 and isinstance(value[0], str)
                                                and isinstance(value[1], int)):
                inputs[name] = {"__value__": value}
        title = node.get("title")
        meta: dict[str, Any] = {"title": title if isinstance(title, str) and title else schema.display_name}
        if per_run:
            meta[PER_RUN] = per_run
        return {"inputs": inputs, "class_type": schema.class_type, "_meta": meta}

    def _primitive_replacements(self, primitive: Mapping[str, Any], value: object, per_run: dict[str, list[str]],
                                name: str) -> object:
        """A PrimitiveNode's value with its text replacements made, when its 'Run widget replace on values' is on
        (applyToGraph); its dates are left for each run."""
        properties = primitive.get("properties")
        if not isinstance(properties, Mapping) or not _js_truthy(properties.get(RUN_WIDGET_REPLACE)) \
                or not isinstance(value, str) or not value:
            return value
        value = replace_node_references(value, self._widget)
        if has_dates(value):
            per_run[name] = [DATES]
        return value

    def _resolve_input(self, graph: _Graph, node: Mapping[str, Any], slot: int) -> _Resolved | None:
        """What feeds input `slot` of `node` (ExecutableNodeDTO.resolveInput): followed through Reroute and
        bypassed nodes, out of a subgraph through its instance's inputs, into one through its outputs. A loop,
        not recursion: a long chain of reroutes must not exhaust the interpreter's recursion limit."""
        want: object = None  # the type asked for, which picks the input a bypassed node passes on
        seen: set[tuple[tuple[str, ...], str, str, int]] = set()
        while True:  # `slot` is an input of `node`
            entry = self._input_entry(node, slot)
            link_id = entry.get("link") if entry is not None else None
            if entry is None or link_id is None:
                return None
            where = f"{graph.label(node)}: input '{str(entry.get('name'))[:80]}'"
            link = graph.links.get(link_id)
            if link is None:
                raise WorkflowFormatError(f"{where} uses link {link_id}, which is not in 'links'; reconnect it in "
                                          f"ComfyUI and save again, {_EXPORT}")
            if isinstance(link, str):
                raise WorkflowFormatError(f"{where} uses link {link_id}, which {link}; reconnect it in ComfyUI and "
                                          f"save again, {_EXPORT}")
            want = want if want is not None else entry.get("type")
            if graph.subgraph is not None and link.origin_id == graph.subgraph.input_node_id:
                found = self._instance_input(graph, where, link.origin_slot)
                if found is None or isinstance(found, tuple):
                    return found
                graph, node, slot, want = found, graph.instance, link.origin_slot, None  # type: ignore[assignment]
                continue
            origin = graph.nodes.get(link.origin_id)
            if origin is None:
                raise WorkflowFormatError(f"{where} is linked to node {link.origin_id}, which is not in the "
                                          f"workflow; reconnect it, {_EXPORT}")
            node, slot = origin, link.origin_slot
            while True:  # `slot` is an output of `node` (ExecutableNodeDTO.resolveOutput)
                key = (graph.path, str(node["id"]), "out", slot)
                if key in seen:
                    raise WorkflowFormatError(f"{graph.label(node)}: its links form a loop through Reroute or bypassed "
                                              f"nodes (or subgraphs); remove the loop in ComfyUI, {_EXPORT}")
                seen.add(key)
                subgraph = self.subgraphs.get(node["type"])
                if node["type"] == "PrimitiveNode":  # the editor copies its value into the widgets it feeds
                    values = node.get("widgets_values")
                    return (None, values[0]) if isinstance(values, list) and values else None
                if node.get("mode") == BYPASSED:
                    through = self._bypass_input(node, slot, want)
                    if through is None:
                        return None
                    slot, want = through, None
                    break
                if subgraph is not None:
                    inner = self._subgraph_output(graph, node, subgraph, slot)
                    if inner is None:
                        return None
                    graph, node, slot = inner
                    if node is graph.instance:  # the subgraph passes one of its inputs straight out
                        want = None
                        break
                    continue
                if node["type"] == "Reroute":
                    slot = 0
                    break
                return graph.node_id(node), slot

    def _input_entry(self, node: Mapping[str, Any], slot: int) -> Mapping[str, Any] | None:
        subgraph = self.subgraphs.get(node["type"])
        if subgraph is not None:
            return instance_input(node, subgraph, slot)
        entries = node.get("inputs") or ()
        return entries[slot] if 0 <= slot < len(entries) else None

    def _instance_input(self, graph: _Graph, where: str, slot: int) -> _Graph | _Resolved | None:
        """A subgraph's input `slot` seen from inside: the instance's graph to follow its input `slot` in, or the
        value of the instance's promoted widget when that input is not linked."""
        instance, outer, subgraph = graph.instance, graph.parent, graph.subgraph
        assert instance is not None and outer is not None and subgraph is not None
        if not 0 <= slot < len(subgraph.inputs):
            raise WorkflowFormatError(
                f"{where} comes from input {slot} of the subgraph '{subgraph.name}', which has only "
                f"{len(subgraph.inputs)} inputs; open the workflow in ComfyUI and save it again, {_EXPORT}")
        entry = instance_input(instance, subgraph, slot)
        if entry is not None and entry.get("link") is not None:
            return outer
        if not subgraph.inputs[slot].is_widget:
            return None
        if outer.subgraph is not None and outer.subgraph.index < subgraph.index:
            # The editor configures the definitions in order: an instance inside a subgraph defined before
            # its own subgraph's definition does not get its widget values, so the inner widget's value stays.
            return None
        value = instance_widget_values(instance, subgraph).get(subgraph.inputs[slot].name)
        return (None, value) if value is not None else None

    def _subgraph_output(self, graph: _Graph, instance: Mapping[str, Any], subgraph: Subgraph,
                         slot: int) -> tuple[_Graph, Mapping[str, Any], int] | None:
        """The node and output inside `subgraph` that feed the instance's output `slot` (its first link)."""
        link_id = subgraph.output_links[slot] if slot < len(subgraph.output_links) else None
        link = subgraph.links.get(link_id) if link_id is not None else None
        if not isinstance(link, UiLink):
            return None
        if link.origin_id == subgraph.input_node_id:
            return graph, instance, link.origin_slot
        origin = subgraph.nodes.get(link.origin_id)
        if origin is None:
            raise WorkflowFormatError(
                f"output {slot} of the subgraph '{subgraph.name}' ({graph.label(instance)}) is linked to node "
                f"{link.origin_id}, which is not in the subgraph; reconnect it in ComfyUI and save again, {_EXPORT}")
        return graph.inside(instance, subgraph), origin, link.origin_slot

    def _bypass_input(self, node: Mapping[str, Any], slot: int, want: object) -> int | None:
        """The input a bypassed node passes to output `slot` (ExecutableNodeDTO's choice)."""
        subgraph = self.subgraphs.get(node["type"])
        if subgraph is not None:  # an instance's slots are its subgraph's (the saved ones may be fewer)
            inputs: list[Mapping[str, Any]] = [{"type": entry.type} for entry in subgraph.inputs]
            out_type = subgraph.output_types[slot] if slot < len(subgraph.output_types) else None
        else:
            inputs = node.get("inputs") or []
            outputs = node.get("outputs") or ()
            out_type = outputs[slot].get("type") if slot < len(outputs) else None
        if want in ("*", ""):
            return slot if len(inputs) > slot else 0
        same = inputs[slot] if slot < len(inputs) else None
        if same and _valid_connection(same.get("type"), out_type) and _valid_connection(same.get("type"), want):
            return slot
        exact = next((i for i, entry in enumerate(inputs) if entry.get("type") == want), None)
        if exact is not None:
            return exact
        return next((i for i, entry in enumerate(inputs) if _valid_connection(entry.get("type"), out_type)
                     and _valid_connection(entry.get("type"), want)), None)


def convert_ui_workflow(data: Mapping[str, Any], catalog: NodeCatalog) -> dict[str, dict[str, Any]]:
    """The API-format prompt the ComfyUI editor would queue for this UI-format workflow.

    Raises :class:`WorkflowFormatError` naming the node (id and type) for what cannot be converted.
    """
    return _Converter(data, catalog).convert()


def load_any_workflow(source: WorkflowSource, catalog: NodeCatalog) -> Workflow:
    """Load an API-format workflow, or a UI-format one converted with the engine's schemas."""
    data = _read_source(source)
    if detect_format(data) == "ui":
        assert isinstance(data, Mapping)
        return load_workflow(convert_ui_workflow(data, catalog))
    return load_workflow(data)  # type: ignore[arg-type]  # load_workflow names what is wrong with non-objects
