"""One ComfyUI engine process: launch on a loopback port, wait until it answers, stop it cleanly."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from runtimes.engine.errors import (
    EngineNotFoundError,
    EnginePortInUseError,
    EngineStartError,
    EngineStartTimeoutError,
)
from runtimes.engine.install import EngineInstall

_LIFELINE = Path(__file__).with_name("lifeline.py")
_PORT_IN_USE_SIGNS = ("address already in use", "[errno 98]")


@dataclass(frozen=True)
class EngineLaunch:
    """Everything needed to start one engine process."""

    install: EngineInstall
    base_dir: Path  # models/, input/, output/, custom_nodes/, user/: shared by the engines of one app
    log_path: Path
    name: str = "engine-0"
    host: str = "127.0.0.1"
    port: int | None = None  # None: a free loopback port is picked at each start
    cuda_device: int | None = None  # this process sees only this GPU; None with cpu=True: CPU only
    cpu: bool = True
    disable_api_nodes: bool = False
    preview_method: str = "auto"  # live previews for forms: TAESD when installed, else latent2rgb
    startup_timeout: float = 180.0
    extra_args: tuple[str, ...] = field(default_factory=tuple)
    cpu_threads: int | None = None  # torch/OpenMP threads: CPU engines sharing a machine must not oversubscribe it
    extra_env: tuple[tuple[str, str], ...] = ()  # set last, e.g. CUDA hidden while a memory snapshot is taken

    @property
    def label(self) -> str:
        return "cpu" if self.cpu else f"cuda:{self.cuda_device if self.cuda_device is not None else 0}"


class EngineProcess:
    """A ComfyUI `main.py` we started; it exits with us (see lifeline.py)."""

    def __init__(self, launch: EngineLaunch) -> None:
        self.launch = launch
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self.started_at: float | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the engine has not been started")
        return f"http://{self.launch.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    def start(self) -> None:
        """Start and block until `/system_stats` answers; raises a clear error when it cannot."""
        main_py = self.launch.install.comfyui_dir / "main.py"
        if not main_py.is_file():
            raise EngineNotFoundError(
                f"No ComfyUI found at {self.launch.install.comfyui_dir} (no main.py). Point --comfyui-path at "
                "a ComfyUI checkout, or leave it out to use the bundled engine."
            )
        if not Path(self.launch.install.python).exists():
            raise EngineNotFoundError(f"The engine's Python {self.launch.install.python} does not exist.")
        explicit_port = self.launch.port
        for attempt in range(3):
            self.port = explicit_port or free_port(self.launch.host)
            if explicit_port is not None and not port_is_free(self.launch.host, explicit_port):
                raise EnginePortInUseError(
                    f"Port {explicit_port} on {self.launch.host} is already in use by another program. "
                    "Choose another --engine-port, or leave it out to pick a free one."
                )
            try:
                self._spawn()
                self._wait_ready()
                return
            except EnginePortInUseError:
                # A free port picked by us can be taken between the check and the engine's bind: retry.
                if explicit_port is not None or attempt == 2:
                    raise

    def _spawn(self) -> None:
        launch = self.launch
        base = launch.base_dir
        for sub in ("custom_nodes", "user", "input", "output", "models", "temp"):
            (base / sub).mkdir(parents=True, exist_ok=True)  # missing custom_nodes/ crashes start-up
        cmd = [
            str(launch.install.python), "-u", str(_LIFELINE), str(launch.install.comfyui_dir),
            "--listen", launch.host, "--port", str(self.port),
            "--base-directory", str(base),
            # Its own DB, or it logs "unable to open database file" at every start.
            # Its own DB (one per process: SQLite and several writers do not mix), or it logs
            # "unable to open database file" at every start.
            "--database-url", f"sqlite:///{base / 'user' / f'{launch.name}.db'}",
            "--disable-auto-launch",
            "--preview-method", launch.preview_method,
        ]
        if launch.cpu:
            cmd.append("--cpu")
        if launch.disable_api_nodes:
            cmd.append("--disable-api-nodes")
        cmd += list(launch.extra_args)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"}
        if launch.cuda_device is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(launch.cuda_device)
        if launch.cpu_threads is not None:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(launch.cpu_threads)
        env.update(dict(launch.extra_env))
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        # log_tail reads only what this start wrote, not the history of earlier starts.
        self._log_offset = launch.log_path.stat().st_size if launch.log_path.exists() else 0
        with open(launch.log_path, "ab") as log:
            log.write(f"\n=== engine start {time.strftime('%Y-%m-%d %H:%M:%S')} {launch.label} "
                      f"port {self.port}: {' '.join(cmd)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,  # the lifeline: closes when we exit
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(launch.install.comfyui_dir),
                start_new_session=True,  # a Ctrl-C in our terminal is ours to handle, not the engine's
            )
        self.started_at = time.monotonic()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.launch.startup_timeout
        with httpx.Client(timeout=2.0, trust_env=False) as http:
            while time.monotonic() < deadline:
                code = self.returncode
                if code is not None:
                    tail = self.log_tail()
                    if any(sign in tail.lower() for sign in _PORT_IN_USE_SIGNS):
                        raise EnginePortInUseError(
                            f"The engine could not listen on {self.launch.host}:{self.port}: the port is in use."
                        )
                    raise EngineStartError(
                        f"The ComfyUI engine exited with code {code} during start-up. "
                        f"Last lines of {self.launch.log_path}:\n{tail}",
                        log_tail=tail,
                    )
                try:
                    if http.get(f"{self.url}/system_stats").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        tail = self.log_tail()
        self.stop()
        raise EngineStartTimeoutError(
            f"The ComfyUI engine did not answer on {self.url} within {self.launch.startup_timeout:g} s. "
            f"Last lines of {self.launch.log_path}:\n{tail}",
            log_tail=tail,
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Ask politely (close the lifeline, SIGTERM), then SIGKILL; never leaves a process behind."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=min(2.0, timeout))
            return
        except subprocess.TimeoutExpired:
            pass
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """Hard stop, as a crash would (used by fault tests and by a hung engine)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        """The last lines this process wrote to its log (not those of earlier starts)."""
        return read_log_tail(self.launch.log_path, lines, offset=self._log_offset)


def read_log_tail(path: Path, lines: int = 30, offset: int = 0) -> str:
    try:
        with open(path, "rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(offset, size - 64 * 1024))
            text = log.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Ignore lingering TIME_WAIT connections; a listening socket still makes bind fail.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True
