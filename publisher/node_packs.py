"""The custom-node packs a UI-format file says its nodes come from, so a missing node type is named with what to
install: every node the editor saves records ``properties.cnr_id`` (its Comfy Registry id), or ``aux_id``
("owner/repo" on GitHub) for a pack installed from git, and ``ver`` (a version or a commit).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .quoting import quote
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
        return {"id": self.id, "version": self.version, "source": "registry" if self.registry else "github",
                "pin": proposed_pin(self)}  # what `nodes install` and publish's custom_nodes take, when exact


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
    """", provided by the node pack 'x' version 1.2.3 (Comfy Registry) (`python launch.py nodes install x@1.2.3`)"
    for a refusal message (the command only when the version is exact enough to pin), or ""."""
    pack = pack_of(node)
    if pack is None:
        return ""
    pin = proposed_pin(pack)
    return f", provided by {pack.describe()}" + (f" (`python launch.py nodes install {pin}`)" if pin else "")


def saved_with(node: Mapping[str, Any]) -> str | None:
    """What the node's widgets were saved with: its pack and version, or "ComfyUI 0.3.10" for a core node."""
    if pack := pack_of(node):
        return pack.describe()
    properties = node.get("properties")
    version = properties.get("ver") if isinstance(properties, Mapping) and properties.get("cnr_id") == CORE else None
    return f"ComfyUI {version[:_FIELD_LENGTH]}" if isinstance(version, str) and version.strip() else None


# --- pins: the exact pack an app needs, as `nodes install` takes it and AppSpec.custom_nodes stores it ----------

_COMMIT = re.compile(r"[0-9a-fA-F]{40}")
_SHORT_COMMIT = re.compile(r"[0-9a-fA-F]{4,39}")
_VERSION = re.compile(r"\d+\.\d+\.\d+")  # the Comfy Registry's version pattern
_REGISTRY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_GIT_SCHEMES = ("https://", "ssh://", "file://")
_SCP_LIKE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*@[A-Za-z0-9][A-Za-z0-9_.-]*:[^\s]+")  # git@github.com:owner/repo
_FOLDER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
RESERVED_FOLDERS = frozenset({"comfy_publisher"})  # the app's own editor extension (runtimes/engine/extension.py)


class PinError(ValueError):
    """A pack pin that cannot be used; the message says what is wrong and what to write."""


@dataclass(frozen=True)
class PackPin:
    """One pack at one exact version: a git repository at a full commit, or a Comfy Registry id at a version."""

    repo: str | None = None
    commit: str | None = None
    registry: str | None = None
    version: str | None = None

    @property
    def folder(self) -> str:
        """Its folder under custom_nodes/: the registry id, or the repository's last path segment."""
        if self.registry is not None:
            name = self.registry
        else:
            name = re.split(r"[/:]", (self.repo or "").rstrip("/"))[-1].removesuffix(".git")
        return check_folder(name)

    def __str__(self) -> str:
        return f"{self.repo}@{self.commit}" if self.repo is not None else f"{self.registry}@{self.version}"

    def to_dict(self) -> dict[str, str]:
        """The form AppSpec.custom_nodes keeps (and Modal images are generated from)."""
        if self.repo is not None:
            return {"repo": self.repo, "commit": str(self.commit)}
        return {"registry": str(self.registry), "version": str(self.version)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PackPin:
        if "repo" in data:
            return parse_pin(f"{data.get('repo')}@{data.get('commit')}")
        if "registry" in data:
            return parse_pin(f"{data.get('registry')}@{data.get('version')}")
        raise PinError(f"a pack pin needs repo and commit, or registry and version; got {quote(dict(data))}")


def check_folder(name: str) -> str:
    """`name` when it is a plain folder name that stays inside custom_nodes/; PinError otherwise."""
    if not _FOLDER.fullmatch(name) or name in RESERVED_FOLDERS or set(name) == {"."}:
        raise PinError(f"{quote(name)} is not usable as a pack's folder name under custom_nodes/: use letters, "
                       "digits, '_', '-' and '.', not starting with '.' or '-'"
                       + (" (that name is the app's own editor extension)" if name in RESERVED_FOLDERS else ""))
    return name


def parse_pin(text: str) -> PackPin:
    """`GIT_URL@COMMIT` (https://, ssh://, file:// or git@host:path, and a full 40-hex commit) or
    `REGISTRY_ID@VERSION` (x.y.z); PinError saying what to write otherwise."""
    text = text.strip() if isinstance(text, str) else ""
    where, at, pinned = text.rpartition("@")
    if not at or not where or not pinned:
        raise PinError(f"{quote(text)} is no pack pin: write GIT_URL@COMMIT (e.g. "
                       "https://github.com/owner/repo@<40-hex commit>) or REGISTRY_ID@VERSION (e.g. comfyui-foo@1.2.3)")
    if where.startswith(_GIT_SCHEMES) or _SCP_LIKE.fullmatch(where):
        if _COMMIT.fullmatch(pinned):
            pin = PackPin(repo=where, commit=pinned.lower())
            _ = pin.folder  # a repository whose name is no usable folder is refused now, not at install
            return pin
        hint = (" is abbreviated: give the full 40-hex commit (`git rev-parse " + pinned + "` in a clone, or the "
                "commit's page on the host)") if _SHORT_COMMIT.fullmatch(pinned) else \
            " is not a commit: give the full 40-hex commit (a branch or tag moves; a pin must not)"
        raise PinError(f"{quote(text)}: the commit {quote(pinned)}{hint}")
    if "/" in where or ":" in where:
        raise PinError(f"{quote(text)}: a git URL starts with https://, ssh://, file:// or git@host: ; a registry "
                       "id has no '/'")
    if not _REGISTRY_ID.fullmatch(where):
        raise PinError(f"{quote(text)}: {quote(where)} is not a Comfy Registry id (letters, digits, '_', '-', '.')")
    if not _VERSION.fullmatch(pinned):
        raise PinError(f"{quote(text)}: the registry version {quote(pinned)} must be x.y.z, e.g. 1.2.3 (as "
                       "https://registry.comfy.org lists the pack's versions)")
    pin = PackPin(registry=where, version=pinned)
    _ = pin.folder
    return pin


def proposed_pin(pack: NodePack) -> str | None:
    """The pin a UI file's pack suggests: a registry id at an x.y.z version, or the GitHub repository at a full
    commit; None when its version is missing or not exact enough to pin."""
    if pack.version is None:
        return None
    text = f"{pack.id}@{pack.version}" if pack.registry else f"https://github.com/{pack.id}@{pack.version}"
    try:
        return str(parse_pin(text))
    except PinError:
        return None
