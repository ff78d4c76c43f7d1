"""The real app, as a subprocess on a free port: started, killed and restarted like a user would. The tests and the
service benchmarks (bench/service.py) both start it through this one harness."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from runtimes.engine.process import free_port
from tests.support.paths import ENGINE_HOME, REPO


class AppServer:
    def __init__(self, data_dir: Path, *, comfyui_url: str | None, extra: tuple[str, ...] = (),
                 env: Mapping[str, str | None] | None = None, engine_home: Path = ENGINE_HOME,
                 workers: int | None = None, test_mode: bool = True, profile: Path | None = None,
                 poll_s: float = 0.1) -> None:
        """comfyui_url None: the app starts and manages its own engine(s) (the bundled one). env: variables set
        (None: removed) in the app's environment. test_mode: a DB checkout on the event loop fails the request
        (so the tests catch it) and webhooks may call loopback; benchmarks turn it off to run the app as users
        do. profile: run it under cProfile in all its threads (bench.profile_app), stats written there."""
        self.data_dir = data_dir
        self.comfyui_url = comfyui_url
        self.port = free_port()
        self.log = data_dir / "server.log"
        self.poll_s = poll_s
        engine = ["--comfyui-url", comfyui_url] if comfyui_url else ["--engine-home", str(engine_home)]
        self.args = ["--no-browser", "--port", str(self.port), "--data-dir", str(data_dir), *engine,
                     "--disable-api-nodes", *(["--workers", str(workers)] if workers else []),
                     *(["--allow-private-webhooks"] if test_mode else []), *extra]
        self.env = {**({"COMFY_PUBLISHER_STRICT_DB_LOOP": "1"} if test_mode else {}), **(env or {})}
        self.entry = ["-m", "bench.profile_app", str(profile)] if profile else ["launch.py"]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60.0, *, until: str = "/readyz") -> AppServer:
        """Start, and return once `until` answers 200 (/healthz: the process is up, engines may still start)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env = {k: v for k, v in {**env, **self.env}.items() if v is not None}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([sys.executable, *self.entry, *self.args], cwd=REPO, stdout=log,
                                            stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}{until}", timeout=1, trust_env=False).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(self.poll_s)
        self.stop()
        raise TimeoutError(f"the app was not ready in {timeout} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGINT (a clean shutdown: the pool interrupts its runs, managed engines stop), then SIGKILL."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()  # managed engines follow: they watch a pipe this process holds
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a machine loses power."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def cli(self, *args: str) -> str:
        out = subprocess.run([sys.executable, "launch.py", "--data-dir", str(self.data_dir), *args], cwd=REPO,
                             capture_output=True, text=True, check=True)
        return out.stdout

    def create_key(self, name: str, *, admin: bool = False) -> str:
        """An API key from the app's own CLI (the only way to get the first admin key): `launch.py keys create`'s
        own code, run in this process. A subprocess would add a Python start and its imports (most of a second) to
        each of the suite's many keys; `cli` runs the command as a user does."""
        import launch  # the repo root's entry point: imported only by those who make keys

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = launch.main(["--data-dir", str(self.data_dir), "keys", "create", name,
                                *(["--admin"] if admin else [])])
        if code != 0:
            raise RuntimeError(f"keys create {name} exited with {code}: {out.getvalue()}")
        return out.getvalue().strip().splitlines()[-1]

    def engines(self) -> list[dict[str, Any]]:
        """The app's engines as GET /api/engine lists them: name, url, pid (None with --comfyui-url), ..."""
        return httpx.get(f"{self.url}/api/engine", timeout=10, trust_env=False).json()["engines"]
