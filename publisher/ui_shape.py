"""The shape of a UI-format workflow (what the ComfyUI editor saves), checked before it is converted.

Every field the converter reads must have the type the editor writes; a refusal names the node (id and type),
the field, what was found and what was expected. Links are read leniently, as the editor reads them: saved
files often keep stale links, so a malformed link is an error only when an input uses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from .workflow import MAX_INT, MAX_NAME_LENGTH, WorkflowFormatError, json_type, short_repr

MAX_LISTED_PROBLEMS = 10  # a broken file can have thousands; the first few say what is wrong
_EXPORT = "or in ComfyUI use Workflow > Export (API) and upload that file"


@dataclass(frozen=True)
class UiLink:
    origin_id: str
    origin_slot: int


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def found(value: object) -> str:
    return f"{json_type(value)} {short_repr(value)}" if isinstance(value, str | int | float) else json_type(value)


def _is_node_id(value: object) -> bool:
    if is_int(value):
        return -MAX_INT < value < MAX_INT
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME_LENGTH


def _entries_problems(label: str, node: Mapping[str, Any], field: str, keys: dict[str, tuple[type, ...]],
                      expected: dict[str, str]) -> list[str]:
    """`inputs` / `outputs`: null or an array of objects whose `keys` are null or of the given types."""
    entries = node.get(field)
    if entries is None:
        return []
    if not isinstance(entries, list):
        return [f"{label}: '{field}' must be an array, got {found(entries)}"]
    problems = []
    for slot, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            problems.append(f"{label}: {field}[{slot}] must be an object, got {found(entry)}")
            continue
        for key, types in keys.items():
            value = entry.get(key)
            if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
                name = entry.get("name")
                which = f"{field}[{slot}]" + (f" ('{name[:80]}')" if isinstance(name, str) and name else "")
                problems.append(f"{label}: {which} '{key}' must be {expected[key]}, got {found(value)}")
    return problems


def _node_problems(index: int, node: object) -> list[str]:
    if not isinstance(node, Mapping):
        return [f"nodes[{index}] must be an object (a node), got {found(node)}"]
    node_id, kind = node.get("id"), node.get("type")
    if not _is_node_id(node_id):
        return [f"nodes[{index}] has no usable 'id': expected a number, got {found(node_id)}"]
    if not isinstance(kind, str) or not kind.strip() or len(kind) > MAX_NAME_LENGTH:
        return [f"node {node_id} has no usable 'type': expected the node type's name, got {found(kind)}"]
    label = f"node {node_id} ({kind})"
    problems = []
    mode = node.get("mode")
    if mode is not None and not is_int(mode):
        problems.append(f"{label}: 'mode' must be a number (0 active, 2 muted, 4 bypassed), got {found(mode)}")
    widgets = node.get("widgets_values")
    if widgets is not None and not isinstance(widgets, list | Mapping):
        problems.append(f"{label}: 'widgets_values' must be an array of the widgets' values, got {found(widgets)}")
    problems += _entries_problems(label, node, "inputs", {"link": (int,), "name": (str,), "widget": (Mapping,)},
                                  {"link": "a link id (a number) or null", "name": "a string",
                                   "widget": "an object"})
    problems += _entries_problems(label, node, "outputs", {"links": (list,)},
                                  {"links": "an array of link ids or null"})
    return problems


def read_nodes(data: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The nodes by id (as a string), each checked to have the shape the converter reads."""
    nodes: dict[str, Mapping[str, Any]] = {}
    problems: list[str] = []
    raw = data.get("nodes")
    for index, node in enumerate(raw if isinstance(raw, list) else ()):
        found = _node_problems(index, node)
        if not found:
            assert isinstance(node, Mapping)
            node_id = str(node["id"])
            if node_id in nodes:
                found = [f"node id {node_id} is used by two nodes ({nodes[node_id]['type']} and {node['type']})"]
            nodes[node_id] = node
        problems += found
    if problems:
        shown = problems[:MAX_LISTED_PROBLEMS]
        more = f"; and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        raise WorkflowFormatError("This UI-format workflow is damaged: " + "; ".join(shown) + more
                                  + f"; open it in ComfyUI and save it again, {_EXPORT}")
    return nodes


def _link(item: object) -> tuple[object, UiLink | str]:
    """(link id, the link or what is wrong with it) from the 0.4 format's array or the 1.0 format's object."""
    if isinstance(item, list):
        if len(item) < 5:
            return (item[0] if item else None), (
                f"has {len(item)} fields, expected [id, origin node, origin slot, target node, target slot, type]")
        link_id, origin_id, origin_slot = item[0], item[1], item[2]
    elif isinstance(item, Mapping):
        link_id, origin_id, origin_slot = item.get("id"), item.get("origin_id"), item.get("origin_slot")
    else:
        return None, f"is {json_type(item)}"
    if not _is_node_id(origin_id):
        return link_id, f"has no usable origin node: expected a node id, got {found(origin_id)}"
    if not is_int(origin_slot) or origin_slot < 0:
        return link_id, f"has no usable origin slot: expected a slot number (0 or more), got {found(origin_slot)}"
    return link_id, UiLink(str(origin_id), origin_slot)


def read_links(raw: object) -> dict[int, UiLink | str]:
    """Links by id: each a link, or what is wrong with it (said when an input uses it). The editor saves an
    array; LiteGraph also reads an object of id -> link."""
    items = raw.values() if isinstance(raw, Mapping) else raw if isinstance(raw, list) else ()
    links: dict[int, UiLink | str] = {}
    for item in items:
        link_id, link = _link(item)
        if is_int(link_id):
            links.setdefault(link_id, link)
    return links
