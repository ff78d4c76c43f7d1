"""An app's custom node packs (AppSpec.custom_nodes) as build steps of its Modal image.

Each entry is {"repo": "<https git URL>", "commit": "<40 hex>"} or {"registry": "<id>", "version": "<x.y.z>"}: a pin
that cannot drift. The image fetches each pack at exactly that pin with runtimes/serverless/pack_install.py
(shipped in the bundle) and installs its requirements under the engine's constraints, so the image gets the same
packages as the local engine, and a pack that needs other versions fails the build with pip's explanation.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from publisher.node_packs import PackPin, PinError
from publisher.quoting import quote

REGISTRY_ENV = "COMFY_REGISTRY_URL"  # where registry packs come from; a test or a mirror sets it
DEFAULT_REGISTRY = "https://api.comfy.org"
# Characters that stay literal inside the generated file's f-strings and shell command lines.
_GIT_URL = re.compile(r"^https://[A-Za-z0-9.-]+(?::\d+)?/[A-Za-z0-9._~/%+-]+$")
_SHAPES = ('{"repo": "https://github.com/owner/pack", "commit": "<the full 40-hex commit>"}',
           '{"registry": "<Comfy Registry id>", "version": "<x.y.z>"}')


class BundleInputError(ValueError):
    """What an app version carries cannot go into a Modal image; `problems` says what, where and how to fix it."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class PinnedPack:
    kind: Literal["git", "registry"]
    source: str  # the git URL or the registry id
    pin: str  # the commit or the version
    folder: str  # its name under custom_nodes/

    def installer_args(self, registry: str) -> str:
        """pack_install.py's arguments after CUSTOM_NODES and CONSTRAINTS (all validated: safe on a shell line)."""
        tail = f" {registry}" if self.kind == "registry" else ""
        return f"{self.folder} {self.kind} {self.source} {self.pin}{tail}"


def read_packs(entries: Iterable[Any]) -> list[PinnedPack]:
    """The packs, each checked; every bad entry is reported at once (BundleInputError)."""
    packs: list[PinnedPack] = []
    problems: list[str] = []
    for index, entry in enumerate(entries):
        where = f"custom_nodes[{index}] {quote(entry)}"
        pack = _read_one(entry, where, problems)
        if pack is None:
            continue
        clash = next((p for p in packs if p.folder.lower() == pack.folder.lower()), None)
        if clash is not None:
            problems.append(f"{where}: would be installed as custom_nodes/{pack.folder}, as {clash.source} is; "
                            "list each pack once")
            continue
        packs.append(pack)
    if problems:
        raise BundleInputError(problems)
    return packs


def registry_url(environ: Mapping[str, str] = os.environ) -> str:
    """The Comfy Registry the image asks for registry packs: $COMFY_REGISTRY_URL, else api.comfy.org."""
    url = environ.get(REGISTRY_ENV, "").strip().rstrip("/") or DEFAULT_REGISTRY
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or not re.fullmatch(r"[A-Za-z0-9.:/_%-]+", url):
        raise BundleInputError([f"{REGISTRY_ENV}={quote(url)} is not an http(s) address; unset it to use "
                                f"{DEFAULT_REGISTRY}"])
    return url


def _read_one(entry: Any, where: str, problems: list[str]) -> PinnedPack | None:
    """The entry as a pin (publisher.node_packs checks it as `nodes install` does), which an image build can also
    fetch: a git repository it reaches (https), named in characters safe on the build's command line."""
    if not isinstance(entry, dict) or set(entry) not in ({"repo", "commit"}, {"registry", "version"}):
        problems.append(f"{where}: give exactly {_SHAPES[0]} or {_SHAPES[1]}")
        return None
    if "repo" in entry and not (isinstance(entry["repo"], str) and _GIT_URL.match(entry["repo"])):
        problems.append(f"{where}: repo must be an https:// git URL that the image build can reach (a local "
                        "path or file:// URL is not reachable from Modal; push the pack to a git host)")
        return None
    try:
        pin = PackPin.from_dict(entry)
    except PinError as exc:
        problems.append(f"{where}: {exc}")
        return None
    if pin.repo is not None:
        return PinnedPack("git", pin.repo, str(pin.commit), pin.folder)
    return PinnedPack("registry", str(pin.registry), str(pin.version), pin.folder)
