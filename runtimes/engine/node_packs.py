"""Custom node packs in a managed engine's custom_nodes/: install one at a pin, list them, remove one.

An install is staged in a temporary folder beside custom_nodes/ (git: the exact commit; registry: the version's
zip), its requirements are checked against the engine's pins and installed with them as constraints, and only then
is the folder moved into custom_nodes/<name> with a marker (MARKER: the pin and when). Any failure removes the
staging folder and leaves custom_nodes/ as it was. The engines load a new pack when they start again.

A pack's install.py is NOT run: it runs arbitrary pip commands past the constraints (ComfyUI-Manager's install
scripts then repair torch afterwards); a pack that has one is installed with its requirements.txt only, and the
result says so.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from publisher.node_packs import PackPin, PinError, check_folder, parse_pin
from runtimes.engine.pack_requirements import (
    RequirementsError,
    conflicts,
    pip_install,
    read_pins,
    read_requirements,
)
from runtimes.serverless.pack_install import PackInstallError, fetch_git, fetch_registry, registry_url

MARKER = ".comfy-publisher.json"  # in each pack we installed: {"pin", "installed_at"}
GIT_TIMEOUT_S = 300.0
Progress = Callable[[str], None]


class PackError(RuntimeError):
    """A pack could not be installed or removed; the message says which and why (git's or pip's tail)."""


class PackNotFound(PackError):
    """No pack of that name in custom_nodes/ (nothing to remove)."""


@dataclass(frozen=True)
class InstalledPack:
    name: str  # its folder under custom_nodes/
    pin: str | None  # None: a folder put there by hand, not by us
    installed_at: str | None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "pin": self.pin, "installed_at": self.installed_at, "notes": list(self.notes)}


def install_pack(pin: PackPin | str, custom_nodes: Path, *, python: Path, constraints: Path,
                 progress: Progress = lambda _: None) -> InstalledPack:
    """Install `pin` into `custom_nodes` for the engine whose interpreter is `python`; PackError says why not."""
    try:
        pin = parse_pin(pin) if isinstance(pin, str) else pin
        name = pin.folder
    except PinError as exc:
        raise PackError(str(exc)) from None
    target = custom_nodes / name
    if target.exists() or target.is_symlink():
        raise PackError(f"custom_nodes/{name} exists already ({_pin_of(target) or 'not installed by this app'}): "
                        f"remove it first (`nodes remove {name}`)")
    custom_nodes.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".pack-{name}-", dir=custom_nodes.parent))
    try:
        tree = staging / name
        tree.mkdir()
        if pin.repo is not None:
            progress(f"Fetching {pin.repo} at {pin.commit}")
            fetch_git(str(pin.repo), str(pin.commit), tree)
        else:
            progress(f"Downloading {pin.registry} {pin.version} from the Comfy Registry")
            fetch_registry(registry_url(), str(pin.registry), str(pin.version), tree, deprecated_ok=False)
        notes = _requirements(tree, name, python, constraints, progress)
        if (tree / "install.py").exists():
            notes.append("its install.py was not run (it could install packages past the engine's pins); if the "
                         "pack needs what it installs, add that to the pack's requirements.txt")
        installed_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        (tree / MARKER).write_text(json.dumps({"pin": pin.to_dict(), "installed_at": installed_at}, indent=1))
        tree.rename(target)
    except (PackInstallError, RequirementsError) as exc:
        raise PackError(str(exc)) from None
    except OSError as exc:
        raise PackError(f"pack {name} could not be installed into {custom_nodes}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    progress(f"Installed {name} ({pin}) into {custom_nodes}")
    return InstalledPack(name, str(pin), installed_at, tuple(notes))


def list_packs(custom_nodes: Path) -> list[InstalledPack]:
    """The pack folders in `custom_nodes` (not the app's own editor extension), ours with their pin."""
    if not custom_nodes.is_dir():
        return []
    packs = []
    for entry in sorted(custom_nodes.iterdir()):
        if not _is_pack_folder(entry):
            continue
        marker = _marker(entry)
        packs.append(InstalledPack(entry.name, _pin_of(entry), marker.get("installed_at")))
    return packs


def remove_pack(name: str, custom_nodes: Path) -> None:
    """Remove custom_nodes/<name> (moved aside first, so a half-removed folder is never loaded); PackNotFound when
    no pack `list_packs` shows has that name."""
    try:
        check_folder(name)
    except PinError as exc:
        raise PackNotFound(str(exc)) from None
    target = custom_nodes / name
    if not _is_pack_folder(target):
        known = ", ".join(p.name for p in list_packs(custom_nodes)) or "none"
        raise PackNotFound(f"no pack '{name}' in {custom_nodes} (installed: {known})")
    if target.is_symlink():
        raise PackError(f"custom_nodes/{name} is a link, not a pack this app installed: remove it by hand")
    trash = Path(tempfile.mkdtemp(prefix=f".removed-{name}-", dir=custom_nodes.parent))
    try:
        target.rename(trash / name)
    finally:
        shutil.rmtree(trash, ignore_errors=True)


def _is_pack_folder(entry: Path) -> bool:
    """A folder of custom_nodes/ that is a pack: not a file, a hidden folder, Python's cache, the app's own editor
    extension or a name this app would never install."""
    if not entry.is_dir() or entry.name.startswith(".") or entry.name == "__pycache__":
        return False
    try:
        check_folder(entry.name)
    except PinError:
        return False
    return True


def _marker(folder: Path) -> dict[str, object]:
    try:
        data = json.loads((folder / MARKER).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _pin_of(folder: Path) -> str | None:
    pin = _marker(folder).get("pin")
    try:
        return str(PackPin.from_dict(pin)) if isinstance(pin, dict) else None
    except PinError:
        return None


def _requirements(tree: Path, name: str, python: Path, constraints: Path, progress: Progress) -> list[str]:
    requirements_txt = tree / "requirements.txt"
    if not requirements_txt.is_file():
        return []
    requirements = read_requirements(requirements_txt, name)
    if refused := conflicts(requirements, read_pins(constraints), name):
        raise RequirementsError("; ".join(refused) + ". The pack is not installed: use a version of it that "
                                "works with the engine's packages (runtimes/engine/engine-constraints.txt)")
    if not requirements:
        return []
    progress(f"Installing the requirements of {name}: {', '.join(str(r) for r in requirements)}")
    pip_install(python, requirements_txt, constraints, name)
    return []
