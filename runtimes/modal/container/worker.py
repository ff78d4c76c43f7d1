"""The container side of a deployment: one ComfyUI engine per container, started once, runs through the
same `execute_run` the local pool uses.

Cold-start trick (memory snapshot): `start(cuda_hidden=True)` launches the engine with CUDA hidden while
Modal snapshots the container's memory (there is no GPU then); after a restore `hand_over_gpu()` shows CUDA
to the engine through the snapshot helper node, or restarts it on the GPU if torch cannot see it that way.
No modal import here: this class runs the same on a laptop (the tests do) as in a container.
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
from runtimes.comfy.client import ComfyClient
from runtimes.contract import RunRequest, run_error
from runtimes.engine.install import EngineInstall
from runtimes.engine.process import EngineLaunch, EngineProcess
from runtimes.execute import error_record, execute_run
from runtimes.inputs import InputProblems
from runtimes.modal.wire import outcome_to_result, request_from_payload

log = logging.getLogger(__name__)

SNAPSHOT_NODE = Path(__file__).with_name("snapshot_node")
SNAPSHOT_NODE_NAME = "comfy_publisher_snapshot"


@dataclass(frozen=True)
class WorkerPaths:
    comfyui_dir: Path
    python: Path  # the interpreter that runs ComfyUI (the container's own Python in the image)
    base_dir: Path  # the engine's models/ (the Volume), input/, output/, custom_nodes/
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


class ContainerWorker:
    def __init__(self, paths: WorkerPaths, *, startup_timeout: float = 300.0) -> None:
        self.paths = paths
        self.spec = AppSpec.from_dict(json.loads(paths.spec_file.read_text()))
        self.startup_timeout = startup_timeout
        self.engine: EngineProcess | None = None
        self.device = "none"  # "cpu", "cuda" or "cpu (cuda hidden)"
        self._client: ComfyClient | None = None
        self._catalog: NodeCatalog | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle ------------------------------------------------------------------------------------

    def start(self, *, cuda_hidden: bool = False) -> None:
        """Start the engine and wait until it answers. With cuda_hidden the engine starts in GPU mode but sees
        no CUDA device (the snapshot helper makes that work), so it can be snapshotted on a CPU-only host."""
        self._install_snapshot_node()
        gpu = container_has_gpu() and not cuda_hidden
        env: tuple[tuple[str, str], ...] = (("COMFY_PUBLISHER_SNAPSHOT", "1"),)
        if cuda_hidden:
            env += (("CUDA_VISIBLE_DEVICES", ""),)
        launch = EngineLaunch(
            install=EngineInstall(comfyui_dir=self.paths.comfyui_dir, python=self.paths.python),
            base_dir=self.paths.base_dir, log_path=self.paths.base_dir / "logs" / "engine.log",
            cpu=not gpu and not cuda_hidden, disable_api_nodes=True, startup_timeout=self.startup_timeout,
            extra_env=env,
        )
        began = time.monotonic()
        self.engine = EngineProcess(launch)
        self.engine.start()
        self.device = "cpu (cuda hidden)" if cuda_hidden else ("cuda" if gpu else "cpu")
        log.info("engine ready on %s in %.1f s", self.device, time.monotonic() - began)

    def hand_over_gpu(self) -> str:
        """After a snapshot restore: show the GPU to the engine started with CUDA hidden. Returns the device."""
        if self.engine is None or not self.engine.is_running():
            self.start()
            return self.device
        if not container_has_gpu():
            # Started with CUDA hidden, the engine is in GPU mode: it would fail to load any checkpoint (ComfyUI
            # asks CUDA for the dtype). With no GPU to show it, a plain CPU engine takes its place.
            log.info("no GPU in this container: the engine is restarted on the CPU")
            self.stop()
            self.start()
            return self.device
        answer = httpx.post(f"{self.engine.url}/comfy-publisher/gpu", json={"devices": "0"}, timeout=30,
                            trust_env=False).json()
        if answer.get("cuda"):
            self.device = "cuda"
            log.info("GPU handed over to the engine: %s", answer.get("device"))
        else:  # torch had already settled on no CUDA: a plain restart on the GPU is slower but right
            log.warning("the engine cannot see the GPU after the restore (%s); restarting it", answer)
            self.stop()
            self.start()
        return self.device

    def check_ready(self) -> None:
        """Raise when the engine is gone or does not answer (the container should then stop taking runs)."""
        if self.engine is None or not self.engine.is_running():
            tail = self.engine.log_tail(20) if self.engine else ""
            raise RuntimeError(f"the ComfyUI engine is not running. Last log lines:\n{tail}")
        httpx.get(f"{self.engine.url}/system_stats", timeout=10, trust_env=False).raise_for_status()

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.stop()

    def _install_snapshot_node(self) -> None:
        target = self.paths.base_dir / "custom_nodes" / SNAPSHOT_NODE_NAME
        if not (target / "__init__.py").exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(SNAPSHOT_NODE, target, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))

    # --- runs -----------------------------------------------------------------------------------------

    async def run(self, payload: dict[str, Any]) -> dict[str, Any]:
        """One run: {"run_id", "inputs"} -> {"status": "succeeded", outputs...} or {"status", "error"}."""
        run_id = str(payload.get("run_id") or "")
        try:
            request = request_from_payload(self.spec, run_id, dict(payload.get("inputs") or {}))
        except InputProblems as exc:
            return {"status": "failed", "run_id": run_id,
                    "error": run_error("input_error", str(exc), details={"errors": exc.problems})}
        return await self.execute(request)

    async def execute(self, request: RunRequest) -> dict[str, Any]:
        client, catalog = await self._connect()
        try:
            outcome = await execute_run(client, catalog, request)
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
