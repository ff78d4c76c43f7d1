"""The worker side of a serverless deployment: one ComfyUI engine per container, started once, and runs through the
same `execute_run` the local pool uses. No provider SDK is imported here: the same class runs on a laptop (the
tests do) as in a Modal container or a RunPod worker; each provider's container code adds its own hooks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from publisher import AppSpec, NodeCatalog
from runtimes.comfy.client import ComfyClient, EventCallback
from runtimes.contract import RunRequest, run_error
from runtimes.engine.install import EngineInstall
from runtimes.engine.process import EngineLaunch, EngineProcess
from runtimes.execute import error_record, execute_run
from runtimes.inputs import InputProblems
from runtimes.serverless.wire import outcome_to_result, request_from_payload

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerPaths:
    comfyui_dir: Path
    python: Path  # the interpreter that runs ComfyUI (the container's own Python in the image)
    base_dir: Path  # the engine's models/ (a volume, or the image's), input/, output/, custom_nodes/
    spec_file: Path  # the published app version, baked into the image

    @classmethod
    def from_env(cls, defaults: dict[str, str]) -> WorkerPaths:
        """Container paths, overridable by COMFY_PUBLISHER_* variables (to run the same class elsewhere)."""
        def get(name: str) -> Path:
            return Path(os.environ.get(f"COMFY_PUBLISHER_{name.upper()}", defaults[name]))
        return cls(comfyui_dir=get("comfyui_dir"), python=get("python"), base_dir=get("base_dir"),
                   spec_file=get("spec_file"))


def container_has_gpu() -> bool:
    return Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi") is not None


class EngineWorker:
    def __init__(self, paths: WorkerPaths, *, startup_timeout: float = 300.0) -> None:
        self.paths = paths
        self.spec = AppSpec.from_dict(json.loads(paths.spec_file.read_text()))
        self.startup_timeout = startup_timeout
        self.engine: EngineProcess | None = None
        self.device = "none"  # "cpu" or "cuda" (a provider's hooks may say more)
        self._client: ComfyClient | None = None
        self._catalog: NodeCatalog | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the engine (on the GPU when the container has one) and wait until it answers."""
        self._launch(gpu=container_has_gpu())

    def _launch(self, *, gpu: bool, cpu: bool | None = None, extra_env: tuple[tuple[str, str], ...] = (),
                device: str | None = None) -> None:
        """`cpu`: ComfyUI's --cpu flag (default: not `gpu`); `device`: the label logged and kept."""
        launch = EngineLaunch(
            install=EngineInstall(comfyui_dir=self.paths.comfyui_dir, python=self.paths.python),
            base_dir=self.paths.base_dir, log_path=self.paths.base_dir / "logs" / "engine.log",
            cpu=not gpu if cpu is None else cpu, disable_api_nodes=True, startup_timeout=self.startup_timeout,
            extra_env=extra_env,
        )
        began = time.monotonic()
        self.engine = EngineProcess(launch)
        self.engine.start()
        self.device = device or ("cuda" if gpu else "cpu")
        log.info("engine ready on %s in %.1f s", self.device, time.monotonic() - began)

    def check_ready(self) -> None:
        """Raise when the engine is gone or does not answer (the container should then stop taking runs)."""
        if self.engine is None or not self.engine.is_running():
            tail = self.engine.log_tail(20) if self.engine else ""
            raise RuntimeError(f"the ComfyUI engine is not running. Last log lines:\n{tail}")
        httpx.get(f"{self.engine.url}/system_stats", timeout=10, trust_env=False).raise_for_status()

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.stop()

    # --- runs -----------------------------------------------------------------------------------------

    async def run(self, payload: dict[str, Any], on_event: EventCallback | None = None) -> dict[str, Any]:
        """One run: {"run_id", "inputs"} -> {"status": "succeeded", outputs...} or {"status", "error"}."""
        run_id = str(payload.get("run_id") or "")
        try:
            request = request_from_payload(self.spec, run_id, dict(payload.get("inputs") or {}))
        except InputProblems as exc:
            return {"status": "failed", "run_id": run_id,
                    "error": run_error("input_error", str(exc), details={"errors": exc.problems})}
        return await self.execute(request, on_event)

    async def execute(self, request: RunRequest, on_event: EventCallback | None = None) -> dict[str, Any]:
        """`on_event`: the engine's events of this run (progress, previews), as the local pool gets them."""
        client, catalog = await self._connect()
        try:
            outcome = await execute_run(client, catalog, request, on_event)
        except Exception as exc:  # the caller gets the same error record a local run would store
            record = error_record(exc, request)
            status = "timed_out" if record["type"] == "timeout" else "failed"
            return {"status": status, "run_id": request.run_id, "error": record}
        return outcome_to_result(outcome)

    async def _connect(self) -> tuple[ComfyClient, NodeCatalog]:
        assert self.engine is not None, "start() the engine first"
        url = self.engine.url
        loop = asyncio.get_running_loop()
        # A client belongs to one event loop (its websocket pump); a restarted engine has a new URL.
        if self._client is None or self._client.base_url != url or self._loop is not loop:
            if self._client is not None and self._loop is loop:
                await self._client.aclose()
            self._client, self._catalog, self._loop = ComfyClient(url), None, loop
        if self._catalog is None:
            self._catalog = NodeCatalog.from_object_info(await self._client.object_info())
        return self._client, self._catalog

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
