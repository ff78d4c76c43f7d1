"""The real app, as a subprocess on a free port: started, killed and restarted like a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from runtimes.engine.process import free_port
from tests.support.paths import ENGINE_HOME, REPO


class AppServer:
    def __init__(self, data_dir: Path, *, comfyui_url: str | None, extra: tuple[str, ...] = (),
                 env: dict[str, str | None] | None = None) -> None:
        """comfyui_url None: the app starts and manages its own engine (the bundled one the tests use).
        env: variables set (None: removed) in the app's environment."""
        self.data_dir = data_dir
        self.comfyui_url = comfyui_url
        self.extra = extra
        self.env = env or {}
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0, *, until: str = "/readyz") -> AppServer:
        """Start, and return once `until` answers 200 (/healthz: the process is up, engines may still start)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Strict: a DB checkout on the event loop fails the request, so the tests catch it.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "COMFY_PUBLISHER_STRICT_DB_LOOP": "1"}
        env = {k: v for k, v in {**env, **self.env}.items() if v is not None}
        engine = ["--comfyui-url", self.comfyui_url] if self.comfyui_url else ["--engine-home", str(ENGINE_HOME),
                                                                               "--disable-api-nodes"]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "launch.py", "--no-browser", "--port", str(self.port), "--data-dir",
                 str(self.data_dir), *engine, "--allow-private-webhooks", *self.extra],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}{until}", timeout=1, trust_env=False).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"the app was not ready in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a machine loses power."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def cli(self, *args: str) -> str:
        out = subprocess.run([sys.executable, "launch.py", "--data-dir", str(self.data_dir), *args], cwd=REPO,
                             capture_output=True, text=True, check=True)
        return out.stdout

    def create_key(self, name: str, *, admin: bool = False) -> str:
        return self.cli("keys", "create", name, *(["--admin"] if admin else [])).strip().splitlines()[-1]
