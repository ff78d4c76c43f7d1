"""The Modal container's worker: the shared one-engine worker (runtimes/serverless/worker.py) plus Modal's
cold-start trick, the memory snapshot.

`start(cuda_hidden=True)` launches the engine with CUDA hidden while Modal snapshots the container's memory (there
is no GPU then); after a restore `hand_over_gpu()` shows CUDA to the engine through the snapshot helper node, or
restarts it on the GPU if torch cannot see it that way. No modal import here: this class runs the same on a laptop
(the tests do) as in a container.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import httpx

from runtimes.serverless.worker import EngineWorker, WorkerPaths, container_has_gpu

__all__ = ["ContainerWorker", "WorkerPaths", "container_has_gpu"]

log = logging.getLogger(__name__)

SNAPSHOT_NODE = Path(__file__).with_name("snapshot_node")
SNAPSHOT_NODE_NAME = "comfy_publisher_snapshot"


class ContainerWorker(EngineWorker):
    def start(self, *, cuda_hidden: bool = False) -> None:
        """Start the engine and wait until it answers. With cuda_hidden the engine starts in GPU mode but sees
        no CUDA device (the snapshot helper makes that work), so it can be snapshotted on a CPU-only host."""
        self._install_snapshot_node()
        gpu = container_has_gpu() and not cuda_hidden
        env: tuple[tuple[str, str], ...] = (("COMFY_PUBLISHER_SNAPSHOT", "1"),)
        if cuda_hidden:
            env += (("CUDA_VISIBLE_DEVICES", ""),)
        self._launch(gpu=gpu, cpu=not gpu and not cuda_hidden, extra_env=env,
                     device="cpu (cuda hidden)" if cuda_hidden else None)

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

    def _install_snapshot_node(self) -> None:
        target = self.paths.base_dir / "custom_nodes" / SNAPSHOT_NODE_NAME
        if not (target / "__init__.py").exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(SNAPSHOT_NODE, target, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
