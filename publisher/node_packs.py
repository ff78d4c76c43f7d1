"""The custom-node packs a UI-format file says its nodes come from, so a missing node type is named with what to
install: every node the editor saves records ``properties.cnr_id`` (its Comfy Registry id), or ``aux_id``
("owner/repo" on GitHub) for a pack installed from git, and ``ver`` (a version or a commit).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .workflow import WorkflowFormatError

_FIELD_LENGTH = 120  # a registry id or "owner/repo" is short; the file's text is quoted no longer than this
CORE = "comfy-core"  # ComfyUI's own nodes: the engine, not a pack to install


@dataclass(frozen=True)
class NodePack:
    """The custom-node pack that provides a node type, as the UI file records it."""

    id: str  # the Comfy Registry id (cnr_id), or "owner/repo" on GitHub (aux_id)
    version: str | None  # a version ("1.2.3") or a git commit
    registry: bool  # True: install from the Comfy Registry; False: from GitHub

    def describe(self) -> str:
        where = "Comfy Registry" if self.registry else "GitHub"
        version = f" version {self.version}" if self.version else ""
        return f"the node pack '{self.id}'{version} ({where})"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "source": "registry" if self.registry else "github"}


@dataclass(frozen=True)
class MissingNodeType:
    class_type: str
    nodes: tuple[str, ...]
    pack: NodePack | None


class MissingNodeTypesError(WorkflowFormatError):
    """A UI-format file uses node types this engine lacks; `missing` names each, with its pack when the file says."""

    def __init__(self, message: str, missing: list[MissingNodeType]) -> None:
        super().__init__(message)
        self.missing = missing


def missing_type(class_type: str, nodes: list[Mapping[str, Any]]) -> MissingNodeType:
    """A missing node type, the ids of the nodes using it, and the first pack one of them names."""
    pack = next((found for node in nodes if (found := pack_of(node)) is not None), None)
    return MissingNodeType(class_type, tuple(str(node.get("id")) for node in nodes), pack)


def pack_of(node: Mapping[str, Any]) -> NodePack | None:
    """The pack a UI node's properties name (cnr_id before aux_id), or None. ComfyUI's own nodes say
    "comfy-core": that is the engine, not a pack to install."""
    properties = node.get("properties")
    if not isinstance(properties, Mapping):
        return None
    version = properties.get("ver")
    version = version[:_FIELD_LENGTH] if isinstance(version, str) and version.strip() else None
    for key, registry in (("cnr_id", True), ("aux_id", False)):
        value = properties.get(key)
        if isinstance(value, str) and value.strip() and value != CORE:
            return NodePack(value.strip()[:_FIELD_LENGTH], version, registry)
    return None


def pack_hint(node: Mapping[str, Any]) -> str:
    """", provided by the node pack 'x' version 1.2 (Comfy Registry)" for a refusal message, or ""."""
    pack = pack_of(node)
    return f", provided by {pack.describe()}" if pack else ""


def saved_with(node: Mapping[str, Any]) -> str | None:
    """What the node's widgets were saved with: its pack and version, or "ComfyUI 0.3.10" for a core node."""
    if pack := pack_of(node):
        return pack.describe()
    properties = node.get("properties")
    version = properties.get("ver") if isinstance(properties, Mapping) and properties.get("cnr_id") == CORE else None
    return f"ComfyUI {version[:_FIELD_LENGTH]}" if isinstance(version, str) and version.strip() else None
