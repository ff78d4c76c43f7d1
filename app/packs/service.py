"""Node packs of this app's engines, for the CLI, the API and the studio alike: where they go (the data dir's
custom_nodes/), which interpreter and pins their requirements are installed with, and whether each loaded.

The CLI works on the folder alone (no server needed; the engines load a pack when they start again); the API and
the studio also restart the running engines, so a pack is usable when they answer.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from runtimes.engine.install import ENGINE_CONSTRAINTS, BundledEngine, default_engine_home
from runtimes.engine.manager import EngineManager, EngineSettings
from runtimes.engine.node_packs import InstalledPack, PackError, install_pack, list_packs, remove_pack
from runtimes.engine.pack_health import last_start, pack_states
from runtimes.engine.pack_requirements import RequirementsError, freeze_constraints

EXTERNAL_ENGINE = ("this app uses a ComfyUI it does not manage (--comfyui-url): install node packs into that "
                   "ComfyUI itself (its custom_nodes/ folder, then restart it), or start this app without "
                   "--comfyui-url so it manages its engine")


class ExternalEngine(PackError):
    """Packs are installed only into engines this app launches."""


class NodePacks:
    def __init__(self, settings: EngineSettings, manager: EngineManager | None = None) -> None:
        self.settings = settings
        self.manager = manager  # the running engines (None from the CLI)
        self._busy = threading.Lock()  # one install or removal at a time: both end in a restart

    @property
    def custom_nodes(self) -> Path:
        return self.settings.base_dir / "custom_nodes"

    @property
    def managed(self) -> bool:
        return not self.settings.comfyui_url

    def install(self, pin: str, progress: Any = print) -> InstalledPack:
        """Install the pack (PackError says why not); the running engines, if any, are NOT restarted here."""
        if not self.managed:
            raise ExternalEngine(EXTERNAL_ENGINE)
        with self._exclusive(), tempfile.TemporaryDirectory(prefix="comfy-publisher-pins-") as scratch:
            python, constraints = self._engine_environment(Path(scratch))
            return install_pack(pin, self.custom_nodes, python=python, constraints=constraints, progress=progress)

    def install_and_load(self, pin: str, progress: Any = print) -> tuple[InstalledPack, int, list[dict[str, Any]]]:
        """Install, restart the running engines, and describe the packs; a pack that failed to import is named in
        the notes with the engine's last line about it (the engines serve all the same)."""
        installed = self.install(pin, progress)
        restarted = self.restart_engines()
        described = self.describe(self.object_info())
        notes = list(installed.notes)
        for pack in described:
            if pack["name"] == installed.name and pack["state"] == "failed":
                last = pack["log"][-1] if pack["log"] else "see the engine's log"
                notes.insert(0, f"{installed.name} failed to import in the engine ({last}); the engine serves "
                                f"without it: fix the pack or remove it (nodes remove {installed.name})")
        return replace(installed, notes=tuple(notes)), restarted, described

    def remove(self, name: str) -> None:
        if not self.managed:
            raise ExternalEngine(EXTERNAL_ENGINE)
        with self._exclusive():
            remove_pack(name, self.custom_nodes)

    def restart_engines(self) -> int:
        """Restart the running engines so they load custom_nodes/ as it is now; how many came back."""
        return len(self.manager.restart_all()) if self.manager is not None else 0

    def describe(self, object_info: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Each pack: name, pin, installed_at, and state ("loaded", "failed" with the engine's log lines, "not
        loaded" until the engines start again), with its node types when `object_info` is given."""
        packs = list_packs(self.custom_nodes)
        states = pack_states([p.name for p in packs], last_start(self.settings.data_dir / "logs" / "engine-0.log"),
                             object_info)
        return [{**pack.to_dict(), "state": states[pack.name].state, "node_types": list(states[pack.name].node_types),
                 "log": list(states[pack.name].log)} for pack in packs]

    def object_info(self) -> dict[str, Any] | None:
        """/object_info of a ready engine, or None when none answers."""
        for engine in self.manager.engines if self.manager is not None else []:
            if engine.is_ready():
                try:
                    return httpx.get(f"{engine.url}/object_info", timeout=30, trust_env=False).json()
                except (httpx.HTTPError, ValueError):
                    continue
        return None

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        if not self._busy.acquire(blocking=False):
            raise PackError("another node pack is being installed or removed: try again when it is done")
        try:
            yield
        finally:
            self._busy.release()

    def _engine_environment(self, scratch: Path) -> tuple[Path, Path]:
        """The engine's interpreter and the pins its packs' requirements must keep: the bundled engine's pinned
        set, or what a ComfyUI of the user's own (--comfyui-path) has installed now."""
        if self.settings.comfyui_path is not None:
            python = EngineManager(self.settings).resolve_install().python
            try:
                return python, freeze_constraints(python, scratch / "installed.txt")
            except (RequirementsError, OSError) as exc:
                raise PackError(str(exc)) from None
        bundled = BundledEngine.under(self.settings.engine_home or default_engine_home())
        if not bundled.is_complete():
            raise PackError(f"the bundled engine is not installed in {bundled.root} yet: start the app once "
                            "(python launch.py) so it installs, then install node packs")
        return bundled.python, ENGINE_CONSTRAINTS
