"""Find the engine, start one process per GPU, restart a process that dies, stop them all.

Resolution order (DESIGN.md): `--comfyui-url` (a ComfyUI the user runs), `--comfyui-path` (the user's
install, launched by us), then the bundled engine (installed once into the data dir).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx

from runtimes.engine.errors import EngineError, EngineNotFoundError, EngineUnreachableError
from runtimes.engine.extension import ExtensionInstallError, install_extension
from runtimes.engine.install import BundledEngine, EngineInstall, Progress, default_engine_home
from runtimes.engine.process import EngineLaunch, EngineProcess

log = logging.getLogger(__name__)

# A process that keeps dying is not restarted forever: past this many crashes in the window, give up.
MAX_RESTARTS = 3
RESTART_WINDOW_S = 300.0


@dataclass(frozen=True)
class EngineSettings:
    data_dir: Path
    comfyui_url: str | None = None
    comfyui_path: Path | None = None
    comfyui_python: Path | None = None  # the interpreter for --comfyui-path; found in its venv if omitted
    engine_home: Path | None = None  # where the bundled engine is installed; default default_engine_home()
    workers: int | None = None  # engine processes; default one per GPU, or one on CPU
    engine_port: int | None = None  # only with a single worker; default a free port
    disable_api_nodes: bool = False
    startup_timeout: float = 180.0
    editor_app_url: str | None = None  # the app's address: its editor extension is installed with it (extension.py)
    url_models_dir: Path | None = None  # the models folder of the ComfyUI at comfyui_url, when this machine sees it

    @property
    def base_dir(self) -> Path:
        """models/, input/, output/, custom_nodes/, user/ of the engines this app launches."""
        return self.data_dir / "comfyui"

    @property
    def models_dir(self) -> Path | None:
        """The folder the engines read model files from: the launched engines', or the one given for the ComfyUI
        at comfyui_url (None when not given: its folders are its own)."""
        return self.url_models_dir if self.comfyui_url else self.base_dir / "models"


@dataclass(frozen=True)
class Device:
    kind: str  # "cuda" or "cpu"
    index: int | None = None
    name: str = "CPU"
    memory_mb: int | None = None

    @property
    def label(self) -> str:
        return "cpu" if self.kind == "cpu" else f"cuda:{self.index}"


@dataclass
class Engine:
    """One engine the app can send runs to."""

    name: str
    device: Device
    process: EngineProcess | None = None  # None: a ComfyUI we do not manage (--comfyui-url)
    external_url: str | None = None
    restarts: list[float] = field(default_factory=list)  # the recent ones (a crash loop gives up)
    restart_count: int = 0  # all of them, since the app started (app.metrics)
    started: bool = False  # has answered once: it may take runs (others may still be starting)
    failed: str | None = None  # why it was given up on, if it was
    last_crash_log: str = ""  # the dead process's last lines: a restart must not hide why it died

    @property
    def url(self) -> str:
        return self.external_url or self.process.url  # type: ignore[union-attr]

    @property
    def managed(self) -> bool:
        return self.process is not None

    @property
    def output_dir(self) -> Path | None:
        """Where a launched engine writes its outputs (None for a ComfyUI we only have the URL of)."""
        return self.process.launch.base_dir / "output" if self.process is not None else None

    def is_ready(self) -> bool:
        """Can take runs: started, not given up on, and (when we manage it) its process is alive."""
        return self.started and self.failed is None and (self.process is None or self.process.is_running())

    def log_tail(self, lines: int = 30) -> str:
        current = self.process.log_tail(lines) if self.process is not None else ""
        if not self.last_crash_log:
            return current
        return f"{self.last_crash_log}\n--- restarted ---\n{current}"


class EngineManager:
    def __init__(self, settings: EngineSettings, progress: Progress = print) -> None:
        self.settings = settings
        self.progress = progress
        self.engines: list[Engine] = []
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._on_restart: list[Callable[[Engine], None]] = []
        self._lifecycle = threading.Lock()  # a restart on request and the supervisor's crash restart never overlap

    def on_restart(self, callback: Callable[[Engine], None]) -> None:
        """Called (from the supervisor thread) after a crashed engine was started again."""
        self._on_restart.append(callback)

    # --- resolution ----------------------------------------------------------------------------

    def resolve_install(self) -> EngineInstall:
        """The ComfyUI to launch: the user's (--comfyui-path) or the bundled one (installed if needed)."""
        settings = self.settings
        if settings.comfyui_path is not None:
            path = Path(settings.comfyui_path).expanduser().resolve()
            if not (path / "main.py").is_file():
                raise EngineNotFoundError(
                    f"--comfyui-path {path} is not a ComfyUI folder (it has no main.py). Give the folder that "
                    "holds ComfyUI's main.py, or leave the option out to use the bundled engine."
                )
            return EngineInstall(comfyui_dir=path, python=_python_for(path, settings.comfyui_python))
        home = settings.engine_home or default_engine_home()
        return BundledEngine.under(home).ensure(self.progress)

    def start(self, on_ready: Callable[[Engine], None] | None = None) -> list[Engine]:
        """Start the engines; each is handed to `on_ready` (from a start-up thread) as soon as it answers, so the
        first one serves while the others load. One that cannot start is marked failed and the others go on;
        only when none starts does this raise (that engine's error)."""
        settings = self.settings
        if settings.comfyui_url:
            url = settings.comfyui_url.rstrip("/")
            check_reachable(url)
            self.engines = [Engine("engine-0", Device("remote", name=url), external_url=url, started=True)]
            self.progress(f"Using the ComfyUI engine at {url}")
            if on_ready is not None:
                on_ready(self.engines[0])
            return self.engines
        install = self.resolve_install()
        self._install_editor_extension()
        devices = detect_devices(install.python)
        launches = self._plan(install, devices)
        self.progress(
            f"Starting {len(launches)} ComfyUI {install.version or ''} engine(s) on "
            + ", ".join(f"{launch.label}" for launch in launches)
        )
        self.engines = [Engine(launch.name, device, EngineProcess(launch))
                        for launch, device in zip(launches, self._devices_for(launches, devices), strict=True)]
        started = time.monotonic()

        def start_one(engine: Engine) -> None:
            engine.process.start()  # type: ignore[union-attr]
            engine.started = True
            self.progress(f"{engine.name} ready in {time.monotonic() - started:.1f} s: {engine.url}")
            if on_ready is not None:
                on_ready(engine)

        errors: list[BaseException] = []
        try:
            with ThreadPoolExecutor(max_workers=len(self.engines)) as pool:
                for engine, future in [(e, pool.submit(start_one, e)) for e in self.engines]:
                    if (error := future.exception()) is not None:
                        errors.append(error)
                        engine.failed = f"{engine.name} could not start: {error}"
                        if len(self.engines) > 1:
                            self.progress(engine.failed)
            if len(errors) == len(self.engines):
                raise errors[0]
        except BaseException:
            self.stop()
            raise
        ready = [engine for engine in self.engines if engine.started]
        self.progress(f"Engine(s) ready in {time.monotonic() - started:.1f} s: "
                      + ", ".join(engine.url for engine in ready)
                      + (f" ({len(errors)} of {len(self.engines)} could not start)" if errors else ""))
        self._stopping.clear()
        self._supervisor = threading.Thread(target=self._supervise, name="engine-supervisor", daemon=True)
        self._supervisor.start()
        return self.engines

    def _plan(self, install: EngineInstall, devices: list[Device]) -> list[EngineLaunch]:
        settings = self.settings
        gpus = [d for d in devices if d.kind == "cuda"]
        count = settings.workers or max(1, len(gpus))
        if settings.engine_port is not None and count > 1:
            raise EngineError("--engine-port can only be used with a single engine worker.")
        cpu_engines = count if not gpus else 0
        # Several CPU engines each take every core by default and slow each other down (measured: two
        # engines on two cores ran 3x slower than one): give each its share.
        threads = max(1, (os.cpu_count() or 1) // cpu_engines) if cpu_engines > 1 else None
        launches = []
        for i in range(count):
            gpu = gpus[i % len(gpus)] if gpus else None
            launches.append(
                EngineLaunch(
                    install=install,
                    base_dir=settings.base_dir,
                    log_path=settings.data_dir / "logs" / f"engine-{i}.log",
                    name=f"engine-{i}",
                    port=settings.engine_port,
                    cuda_device=gpu.index if gpu else None,
                    cpu=gpu is None,
                    disable_api_nodes=settings.disable_api_nodes,
                    startup_timeout=settings.startup_timeout,
                    cpu_threads=threads if gpu is None else None,
                )
            )
        return launches

    def _install_editor_extension(self) -> None:
        """The editor's "Publish…" command; an engine without it still runs apps, so a failure is only said."""
        if self.settings.editor_app_url is None:
            return
        try:
            install_extension(self.settings.base_dir / "custom_nodes", self.settings.editor_app_url)
        except (ExtensionInstallError, ValueError) as exc:
            self.progress(f"warning: the editor's Publish… command is missing: {exc}")

    @staticmethod
    def _devices_for(launches: list[EngineLaunch], devices: list[Device]) -> list[Device]:
        by_index = {d.index: d for d in devices if d.kind == "cuda"}
        return [Device("cpu") if launch.cpu else by_index[launch.cuda_device] for launch in launches]

    # --- supervision -----------------------------------------------------------------------------

    def _supervise(self) -> None:
        while not self._stopping.wait(0.5):
            for engine in self.engines:
                with self._lifecycle:
                    process = engine.process
                    if process is None or engine.failed or process.is_running() or self._stopping.is_set():
                        continue
                    self._restart(engine, process)

    def restart_all(self) -> list[Engine]:
        """Stop and start each managed engine again, one at a time so the others keep serving (custom nodes load
        only at start-up). Same port when possible; the on_restart callbacks are told of each. Returns the engines
        restarted; an engine that does not come back is marked failed with why."""
        restarted = []
        for engine in list(self.engines):
            with self._lifecycle:
                process = engine.process
                if process is None or not engine.started or self._stopping.is_set():
                    continue  # one still starting loads custom_nodes/ as it is when its start reaches them
                self.progress(f"Restarting {engine.name} to load the custom nodes")
                process.stop()
                fresh = self._start_again(engine, process)
                if fresh is None:
                    continue
                engine.failed, engine.last_crash_log = None, ""
                engine.process = fresh
                restarted.append(engine)
                self.progress(f"{engine.name} is back at {fresh.url}")
            for callback in self._on_restart:
                callback(engine)
        return restarted

    def _start_again(self, engine: Engine, process: EngineProcess) -> EngineProcess | None:
        """A new process for `engine` with the same launch, on the same port when it is free; None (the engine
        marked failed) when it cannot start."""
        fresh = EngineProcess(replace(process.launch, port=process.port))
        try:
            fresh.start()
        except EngineError:
            fresh = EngineProcess(replace(process.launch, port=None))
            try:
                fresh.start()
            except EngineError as exc:
                engine.failed = f"{engine.name} could not be restarted: {exc}"
                self.progress(engine.failed)
                return None
        return fresh

    def _restart(self, engine: Engine, process: EngineProcess) -> None:
        tail = process.log_tail(15)
        engine.last_crash_log = tail
        self.progress(f"{engine.name} exited with code {process.returncode}; restarting. Last log lines:\n{tail}")
        now = time.monotonic()
        engine.restarts = [t for t in engine.restarts if now - t < RESTART_WINDOW_S] + [now]
        if len(engine.restarts) > MAX_RESTARTS:
            engine.failed = (f"{engine.name} crashed {len(engine.restarts)} times in {RESTART_WINDOW_S:g} s; "
                             f"not restarting it. Last log lines:\n{tail}")
            self.progress(engine.failed)
            return
        engine.restart_count += 1
        # Same port when possible, so clients that hold the URL find it again.
        fresh = self._start_again(engine, process)
        if fresh is None:
            return
        engine.process = fresh
        self.progress(f"{engine.name} is back at {fresh.url}")
        for callback in self._on_restart:
            callback(engine)

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(timeout=5)
        for engine in self.engines:
            if engine.process is not None:
                engine.process.stop()


def check_reachable(url: str, timeout: float = 10.0) -> dict:
    """`/system_stats` of a ComfyUI given by URL, or a clear error saying it does not answer."""
    try:
        response = httpx.get(f"{url}/system_stats", timeout=timeout, trust_env=False)
    except httpx.HTTPError as exc:
        raise EngineUnreachableError(
            f"No ComfyUI answers at --comfyui-url {url} ({type(exc).__name__}: {exc}). Start it, or check the "
            "host and port (ComfyUI's default is http://127.0.0.1:8188)."
        ) from exc
    if response.status_code != 200:
        raise EngineUnreachableError(
            f"{url}/system_stats answered HTTP {response.status_code}: is --comfyui-url really a ComfyUI server?"
        )
    return response.json()


_TORCH_PROBE = (
    "import json, torch\n"
    "n = torch.cuda.device_count() if torch.cuda.is_available() else 0\n"
    "print(json.dumps([[i, torch.cuda.get_device_name(i), "
    "torch.cuda.get_device_properties(i).total_memory // 2**20] for i in range(n)]))\n"
)


def detect_devices(python: Path) -> list[Device]:
    """The CUDA devices the engine's torch sees, or [CPU]. Skips the torch probe where no driver exists."""
    if shutil.which("nvidia-smi") is None and not Path("/dev/nvidiactl").exists():
        return [Device("cpu")]
    try:
        out = subprocess.run([str(python), "-c", _TORCH_PROBE], capture_output=True, text=True, timeout=120,
                             check=True).stdout
        gpus = json.loads(out.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError, OSError) as exc:
        log.warning("could not list CUDA devices with the engine's torch (%s); using the CPU", exc)
        return [Device("cpu")]
    return [Device("cuda", i, name, mem) for i, name, mem in gpus] or [Device("cpu")]


def _python_for(comfyui_dir: Path, given: Path | None) -> Path:
    if given is not None:
        return Path(given)
    for candidate in (comfyui_dir / ".venv" / "bin" / "python", comfyui_dir / "venv" / "bin" / "python"):
        if candidate.exists():
            return candidate
    return Path(sys.executable)
