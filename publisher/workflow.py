"""Loading ComfyUI workflows in API format (the prompt the engine's ``POST /prompt`` accepts).

An API-format workflow maps node ids to ``{"class_type", "inputs", "_meta"?}``. An input value
is either a literal or a link ``[source_node_id, output_slot]``. The UI format (what ComfyUI
saves by default: a ``nodes`` list plus ``links``) is recognised here and converted, with the
engine's node schemas, by :mod:`publisher.ui_convert`.
"""

from __future__ import annotations

import copy
import json
import math
import os
import reprlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeGuard

WorkflowFormat = Literal["api", "ui", "unknown"]

# JSON text, bytes, a path, or JSON already parsed (int node ids are tolerated; load_workflow names what is
# wrong with anything that is not an object).
WorkflowSource = str | bytes | os.PathLike[str] | Mapping[Any, Any] | list[Any] | int | float | bool | None

UI_FORMAT_MESSAGE = (
    "This is a ComfyUI UI-format workflow (has 'nodes' and 'links'); converting it needs the engine's node "
    "schemas, which are not at hand here — publish it through the studio or the API (they convert it), or "
    "in ComfyUI use Workflow > Export (API) and upload that file"
)
_EXPORT_HINT = "in ComfyUI use Workflow > Export (API) and upload that file"


class WorkflowFormatError(ValueError):
    """The input is not a usable API-format workflow; the message says what to fix."""


# Bounds on what a workflow holds. ComfyUI writes values a few levels deep; deeper nesting is a broken or
# hostile file and would otherwise exhaust the recursion limit in copying and in the JSON answers.
MAX_VALUE_DEPTH = 32
MAX_NAME_LENGTH = 256  # node ids, node types and input names are echoed in messages
MAX_INT = 2**64  # the engine's INT inputs are 64-bit at most (seeds go to 0xffffffffffffffff)

_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict = 3, 6, 4


def short_repr(value: object) -> str:
    """A value as a message shows it: a short prefix, never the whole of a huge user value."""
    try:
        return _SHORT.repr(value)
    except ValueError:  # an int beyond Python's digit limit for str()
        return f"<a number of {value.bit_length()} bits>" if isinstance(value, int) else f"<{type(value).__name__}>"


def is_link(value: object) -> TypeGuard[list[Any]]:
    """True for ``[node_id, slot]`` — the engine treats such lists as connections, not values."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def node_sort_key(node_id: str) -> tuple[tuple[int, int | str], ...]:
    """Numeric-aware key so "10" sorts after "9" and subgraph ids like "12:3" group together."""
    # ASCII digits only: "²".isdigit() is true, but int() refuses it.
    return tuple((0, int(part)) if part.isascii() and part.isdigit() else (1, part) for part in node_id.split(":"))


def _looks_like_api(data: Mapping[str, Any]) -> bool:
    # One node-shaped value is enough: lenient, so that the loader can then name the precise
    # problem (a node missing class_type, a node that is not an object) instead of "unknown format".
    return any(isinstance(v, Mapping) and ("class_type" in v or "inputs" in v) for v in data.values())


def _unwrap(data: object) -> tuple[WorkflowFormat, object]:
    """Return the detected format and the part of ``data`` that holds the workflow."""
    if not isinstance(data, Mapping):
        return "unknown", data
    if isinstance(data.get("nodes"), list) and "links" in data:
        return "ui", data
    if _looks_like_api(data):
        return "api", data
    # The body of POST /prompt: {"prompt": {...}, "client_id": ..., "extra_data": ...}.
    inner = data.get("prompt")
    if isinstance(inner, Mapping) and _looks_like_api(inner):
        return "api", inner
    return "unknown", data


def detect_format(data: object) -> WorkflowFormat:
    """Tell an API-format prompt (also inside a ``{"prompt": ...}`` body) from a UI-format file."""
    return _unwrap(data)[0]


@dataclass(frozen=True)
class Workflow:
    """A validated-in-shape API-format workflow.

    ``nodes`` is the loader's own deep copy; treat it as read-only and use :meth:`to_prompt`
    for a copy you may change.
    """

    nodes: dict[str, dict[str, Any]]

    def __iter__(self) -> Iterator[str]:
        return iter(self.node_ids())

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.nodes

    def node_ids(self) -> list[str]:
        """Node ids in numeric order."""
        return sorted(self.nodes, key=node_sort_key)

    def class_type(self, node_id: str) -> str:
        return str(self.nodes[node_id]["class_type"])

    def inputs(self, node_id: str) -> dict[str, Any]:
        inputs: dict[str, Any] = self.nodes[node_id]["inputs"]
        return inputs

    def title(self, node_id: str) -> str | None:
        """The node's ``_meta.title`` (what the UI shows), if the export carried one."""
        meta = self.nodes[node_id].get("_meta")
        title = meta.get("title") if isinstance(meta, Mapping) else None
        if not isinstance(title, str) or not title.strip():
            return None
        return title.strip()

    def to_prompt(self) -> dict[str, dict[str, Any]]:
        """A deep copy, safe to modify and submit."""
        return copy.deepcopy(self.nodes)

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.nodes, indent=indent)


def _parse_json(text: str | bytes) -> object:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise WorkflowFormatError(
                f"The workflow file is not UTF-8 text (bad byte at offset {exc.start}); "
                "upload the .json file ComfyUI exported"
            ) from exc
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise WorkflowFormatError(f"The workflow file is empty; {_EXPORT_HINT}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise WorkflowFormatError(
            f"Invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}; "
            "the file must be the JSON that ComfyUI exported, unedited"
        ) from exc
    except RecursionError:
        raise WorkflowFormatError(
            "The JSON is nested too deeply to be a workflow; upload the .json file ComfyUI exported"
        ) from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise WorkflowFormatError(f"The JSON holds a value that cannot be read ({exc}); {_EXPORT_HINT}") from None


def _read_source(source: WorkflowSource) -> object:
    if isinstance(source, Mapping | list) or source is None or isinstance(source, bool | int | float):
        return source  # already parsed JSON; load_workflow names what is wrong with a non-object
    if isinstance(source, bytes):
        return _parse_json(source)
    if isinstance(source, os.PathLike):
        return _parse_json(Path(source).read_bytes())
    if isinstance(source, str):
        # A str is JSON text; one that cannot be JSON but names a file is read as a path.
        stripped = source.lstrip()
        if not stripped.startswith(("{", "[")) and stripped and os.path.isfile(source):
            return _parse_json(Path(source).read_bytes())
        return _parse_json(source)
    raise TypeError(f"load_workflow() takes JSON text, bytes, a path or a dict, not {type(source).__name__}")


_JSON_TYPE_NAMES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


def json_type(value: object) -> str:
    """How a message names the JSON type of a value ("an array", "null"...)."""
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "an object"
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _normalise_value(value: object) -> object:
    # Hand-written prompts often use int node ids in links ([4, 0]); the engine needs strings.
    if (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], int)
        and not isinstance(value[0], bool)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    ):
        return [str(value[0]), value[1]]
    return copy.deepcopy(value)


def _value_problem(value: object) -> str | None:
    """What makes an input value unusable: nesting deeper than any workflow needs, a number JSON cannot carry.
    Walked with a stack, not recursion, so a hostile depth cannot exhaust the interpreter's."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping | list):
            if depth >= MAX_VALUE_DEPTH:
                return f"is nested more than {MAX_VALUE_DEPTH} levels deep"
            children = item.values() if isinstance(item, Mapping) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, float) and not math.isfinite(item):
            return f"holds {item}, which JSON cannot carry; give a finite number"
        elif isinstance(item, int) and not isinstance(item, bool) and not -MAX_INT < item < MAX_INT:
            return "holds an integer beyond 64 bits, more than the engine accepts"
    return None


def _name_problem(what: str, name: str) -> str | None:
    if len(name) > MAX_NAME_LENGTH:
        return f"{what} is {len(name)} characters long ({short_repr(name)}); at most {MAX_NAME_LENGTH} are allowed"
    return None


def _normalise_node(node_id: str, node: object) -> dict[str, Any]:
    if not isinstance(node, Mapping):
        raise WorkflowFormatError(
            f"Node '{node_id}' must be an object with 'class_type' and 'inputs', got {json_type(node)}"
        )
    class_type = node.get("class_type")
    if class_type is not None and not isinstance(class_type, str):
        raise WorkflowFormatError(
            f"Node '{node_id}': 'class_type' must be the node type's name (a string such as \"KSampler\"), "
            f"got {json_type(class_type)}"
        )
    if not isinstance(class_type, str) or not class_type.strip():
        raise WorkflowFormatError(
            f"Node '{node_id}' has no 'class_type' (the node type, e.g. \"KSampler\"); "
            f"every node needs one — {_EXPORT_HINT}"
        )
    if problem := _name_problem("its class_type", class_type):
        raise WorkflowFormatError(f"Node '{node_id}': {problem}")
    inputs = node.get("inputs", {})
    if not isinstance(inputs, Mapping):
        raise WorkflowFormatError(
            f"Node '{node_id}' ({class_type}): 'inputs' must be an object of input name -> value, "
            f"got {json_type(inputs)}"
        )
    meta = node.get("_meta")
    where = f"Node '{node_id}' ({class_type})"
    for name, value in inputs.items():
        if problem := _name_problem("an input name", str(name)):
            raise WorkflowFormatError(f"{where}: {problem}")
        if problem := _value_problem(value):
            raise WorkflowFormatError(f"{where}: input '{name}' {problem}")
        if is_link(value) and (problem := _name_problem("a node whose id", value[0])):
            raise WorkflowFormatError(f"{where}: input '{name}' is linked to {problem}")
    if isinstance(meta, Mapping) and (problem := _value_problem(meta)):
        raise WorkflowFormatError(f"{where}: '_meta' {problem}")
    clean: dict[str, Any] = {
        "class_type": class_type,
        "inputs": {str(k): _normalise_value(v) for k, v in inputs.items()},
    }
    if isinstance(meta, Mapping):
        clean["_meta"] = copy.deepcopy(dict(meta))
    return clean


def _normalise_nodes(data: Mapping[Any, Any]) -> dict[str, dict[str, Any]]:
    nodes: dict[str, dict[str, Any]] = {}
    for raw_id, node in data.items():
        node_id = str(raw_id)
        if problem := _name_problem("a node id", node_id):
            raise WorkflowFormatError(f"The workflow is not usable: {problem}")
        if node_id in nodes:  # {1: ..., "1": ...} in a dict built by hand
            raise WorkflowFormatError(f"Node id '{node_id}' is used twice; give each node its own id")
        nodes[node_id] = _normalise_node(node_id, node)
    return nodes


def load_workflow(source: WorkflowSource) -> Workflow:
    """Load an API-format workflow from JSON text, bytes, a file path or an already parsed dict.

    Raises :class:`WorkflowFormatError` with a message that says what is wrong and how to fix it.
    """
    data = _read_source(source)
    if not isinstance(data, Mapping):
        raise WorkflowFormatError(
            f"A workflow must be a JSON object mapping node ids to nodes, got {json_type(data)}; "
            f"{_EXPORT_HINT}"
        )
    if not data:
        raise WorkflowFormatError(f"The workflow has no nodes; {_EXPORT_HINT}")
    fmt, inner = _unwrap(data)
    if fmt == "ui":
        raise WorkflowFormatError(UI_FORMAT_MESSAGE)
    if fmt == "unknown":
        raise WorkflowFormatError(
            "This JSON is not a ComfyUI workflow: expected an API-format export, an object of "
            f'node id -> {{"class_type", "inputs"}}; {_EXPORT_HINT}'
        )
    assert isinstance(inner, Mapping)
    return Workflow(nodes=_normalise_nodes(inner))
