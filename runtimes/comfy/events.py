"""The engine's websocket messages as typed events.

Names follow ComfyUI's own (`executing`, `progress` value/max, `executed`, ...) so the records feel
familiar to anyone who knows its protocol.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

# ComfyUI's protocol.BinaryEventTypes
_PREVIEW_IMAGE = 1
_PREVIEW_IMAGE_WITH_METADATA = 4
_PREVIEW_FORMATS = {1: "image/jpeg", 2: "image/png"}


@dataclass(frozen=True)
class EngineEvent:
    type: str
    prompt_id: str | None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutionStart(EngineEvent):
    pass


@dataclass(frozen=True)
class Executing(EngineEvent):
    node: str | None = None  # None marks the end of the prompt


@dataclass(frozen=True)
class Progress(EngineEvent):
    node: str | None = None
    value: int = 0
    max: int = 0


@dataclass(frozen=True)
class Executed(EngineEvent):
    node: str | None = None
    output: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutionCached(EngineEvent):
    nodes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExecutionSuccess(EngineEvent):
    pass


@dataclass(frozen=True)
class ExecutionError(EngineEvent):
    pass


@dataclass(frozen=True)
class ExecutionInterrupted(EngineEvent):
    node: str | None = None


@dataclass(frozen=True)
class Status(EngineEvent):
    queue_remaining: int | None = None


@dataclass(frozen=True)
class Preview(EngineEvent):
    """A live preview frame (binary message); `node` is known when the engine sends metadata."""

    node: str | None = None
    mime_type: str = "image/jpeg"
    image: bytes = b""


TERMINAL_EVENTS = (ExecutionSuccess, ExecutionError, ExecutionInterrupted)


_FOLLOWED = frozenset({"execution_start", "executing", "progress", "executed", "execution_cached",
                       "execution_success", "execution_error", "execution_interrupted", "status"})
_TYPE_PREFIX = '{"type": "'  # the engine writes json.dumps({"type": ..., "data": ...})


def parse_text_message(raw: str) -> EngineEvent | None:
    """One JSON websocket message -> event, or None for messages we do not follow."""
    if raw.startswith(_TYPE_PREFIX):
        # Its type, read without parsing the message: those not followed (progress_state, one per step and
        # node, a third of a run's messages) are skipped unparsed.
        end = raw.find('"', len(_TYPE_PREFIX))
        if end > 0 and raw[len(_TYPE_PREFIX):end] not in _FOLLOWED:
            return None
    try:
        message = json.loads(raw)
    except ValueError:
        return None
    kind = message.get("type")
    data = message.get("data") or {}
    prompt_id = data.get("prompt_id")
    match kind:
        case "execution_start":
            return ExecutionStart(kind, prompt_id, data)
        case "executing":
            return Executing(kind, prompt_id, data, node=_node_id(data.get("node")))
        case "progress":
            return Progress(kind, prompt_id, data, node=_node_id(data.get("node")),
                            value=int(data.get("value", 0)), max=int(data.get("max", 0)))
        case "executed":
            return Executed(kind, prompt_id, data, node=_node_id(data.get("node")), output=data.get("output") or {})
        case "execution_cached":
            return ExecutionCached(kind, prompt_id, data, nodes=tuple(str(n) for n in data.get("nodes", [])))
        case "execution_success":
            return ExecutionSuccess(kind, prompt_id, data)
        case "execution_error":
            return ExecutionError(kind, prompt_id, data)
        case "execution_interrupted":
            return ExecutionInterrupted(kind, prompt_id, data, node=_node_id(data.get("node_id")))
        case "status":
            info = (data.get("status") or {}).get("exec_info") or {}
            return Status(kind, None, data, queue_remaining=info.get("queue_remaining"))
    return None


def parse_binary_message(raw: bytes, current_prompt: str | None) -> Preview | None:
    """A binary websocket frame -> preview; plain previews belong to the prompt executing now."""
    if len(raw) < 8:
        return None
    (event_type,) = struct.unpack(">I", raw[:4])
    if event_type == _PREVIEW_IMAGE:
        (image_type,) = struct.unpack(">I", raw[4:8])
        mime = _PREVIEW_FORMATS.get(image_type, "image/jpeg")
        return Preview("preview", current_prompt, {}, node=None, mime_type=mime, image=bytes(raw[8:]))
    if event_type == _PREVIEW_IMAGE_WITH_METADATA:
        (length,) = struct.unpack(">I", raw[4:8])
        try:
            meta = json.loads(raw[8 : 8 + length])
        except ValueError:
            return None
        return Preview(
            "preview",
            meta.get("prompt_id") or current_prompt,
            meta,
            node=_node_id(meta.get("display_node_id") or meta.get("node_id")),
            mime_type=meta.get("image_type", "image/jpeg"),
            image=bytes(raw[8 + length :]),
        )
    return None


def _node_id(value: Any) -> str | None:
    return None if value is None else str(value)
