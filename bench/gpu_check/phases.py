"""The check's two phases, each timed the same way (the engine's own protocol through `ComfyClient`):

1. bare: the engines as the app starts them (`EngineManager`: one process per GPU, `CUDA_VISIBLE_DEVICES` set per
   process), a first txt2img run (the checkpoint loads onto the device), then warm runs;
2. snapshot: the Modal container's worker (`ContainerWorker.start(cuda_hidden=True)`, the engine started with CUDA
   hidden as while a memory snapshot is taken), `hand_over_gpu()` as after a restore, then the same runs, and one
   run through the container's own run path (`ContainerWorker.run`, inputs as a deployment's caller sends them).

After each phase's runs the engine says which device it computes on (`/system_stats`, and the snapshot helper's
`/comfy-publisher/device`) and how much memory torch holds there: that is the check that images came out of the GPU.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import struct
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from bench.client_overhead import percentile
from bench.gpu_check.gpus import GpuSampler
from publisher import AppInput, AppSpec
from publisher.appspec import AppOutput
from runtimes.comfy.client import ComfyClient
from runtimes.engine.install import EngineInstall
from runtimes.engine.manager import Engine, EngineManager, EngineSettings
from runtimes.engine.process import EngineProcess
from runtimes.modal.container.worker import ContainerWorker, WorkerPaths, container_has_gpu
from tests.support.prompts import node_of, txt2img

CHECKPOINT_NAME = "sd15-random-tiny.safetensors"
PROMPT = "a lighthouse on a cliff at dusk, oil painting"


@dataclass(frozen=True)
class Workload:
    size: int
    steps: int
    warm_runs: int
    seed: int = 0  # of the seed sequence: both phases get the same seeds, and no run is a cache hit


@dataclass(frozen=True)
class Setup:
    install: EngineInstall
    checkpoint: Path
    work: Path  # a fresh folder for the engines' base dirs and logs
    workload: Workload
    cpu_only: bool  # --cpu: everything on the CPU, even where a GPU is


def link_checkpoint(base_dir: Path, checkpoint: Path) -> None:
    link = base_dir / "models" / "checkpoints" / CHECKPOINT_NAME
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(checkpoint.resolve())


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR; ValueError when the bytes are not a PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("the output is not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def timed_runs(url: str, setup: Setup, label: str) -> dict[str, Any]:
    """A first run then `warm_runs` more, one at a time, each from before POST /prompt to having the PNG's bytes.
    Returns the timings, the engine's device afterwards, and the last image."""
    workload = setup.workload
    seeds = random.Random(workload.seed)
    runs: list[dict[str, float]] = []
    image = b""
    async with ComfyClient(url) as client:
        for index in range(1 + workload.warm_runs):
            prompt = txt2img(CHECKPOINT_NAME, size=workload.size, steps=workload.steps,
                             seed=seeds.randrange(2**48), prefix=f"gpu_check/{label}/{index}/img", text=PROMPT)
            began = time.perf_counter()
            result = await client.run(prompt)
            image = await client.fetch_output(result.outputs[0])
            wall = time.perf_counter() - began
            if png_size(image) != (workload.size, workload.size):
                raise RuntimeError(f"{label}: the image is {png_size(image)}, not {workload.size}x{workload.size}")
            runs.append({"wall_s": wall, "exec_s": (result.exec_ms or 0.0) / 1000})
        stats = await client.system_stats()
    warm = [run["wall_s"] for run in runs[1:]]
    return {"first_run_s": runs[0]["wall_s"], "first_exec_s": runs[0]["exec_s"],
            "warm_p50_s": statistics.median(warm) if warm else None,
            "warm_p95_s": percentile(warm, 95) if warm else None,
            "warm_exec_p50_s": statistics.median(run["exec_s"] for run in runs[1:]) if warm else None,
            "runs": runs, "device": engine_device(stats), "_image": image}


def engine_device(stats: dict[str, Any]) -> dict[str, Any]:
    """What /system_stats says of the engine's compute device (on_gpu: CUDA) and, on CUDA, the memory torch holds
    there (0 can mean an allocator that keeps no statistics: NVML's readings are the other evidence)."""
    device = (stats.get("devices") or [{}])[0]
    on_gpu = device.get("type") == "cuda"
    return {"name": device.get("name"), "type": device.get("type"), "on_gpu": on_gpu,
            "torch_reserved_mib": (device.get("torch_vram_total") or 0) // 2**20 if on_gpu else None,
            "pytorch": stats.get("system", {}).get("pytorch_version"),
            "python": stats.get("system", {}).get("python_version")}


def bare_phase(setup: Setup, gpus: GpuSampler) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Engines as the app starts them, one per GPU (or one on the CPU), each running the same runs at once."""
    data_dir = setup.work / "bare"
    settings = EngineSettings(data_dir=data_dir, comfyui_path=setup.install.comfyui_dir,
                              comfyui_python=setup.install.python, disable_api_nodes=True)
    link_checkpoint(settings.base_dir, setup.checkpoint)
    manager = EngineManager(settings, progress=_say)
    ready_s: dict[str, float] = {}  # spawn to answering, per engine (the manager's device probe comes before)

    def ready(engine: Engine) -> None:
        assert engine.process is not None and engine.process.started_at is not None
        ready_s[engine.name] = time.monotonic() - engine.process.started_at

    gpus.phase("bare start")
    began = time.perf_counter()
    try:
        engines = [engine for engine in manager.start(on_ready=ready) if engine.started]
        phase: dict[str, Any] = {"manager_start_s": time.perf_counter() - began, "engines": [],
                                 "failed": [engine.failed for engine in manager.engines if engine.failed]}
        gpus.phase("bare runs")

        async def all_engines() -> list[dict[str, Any]]:
            return await asyncio.gather(*(timed_runs(engine.url, setup, engine.name) for engine in engines))

        results = asyncio.run(all_engines())
        gpus.phase("idle")
        images = {}
        for engine, result in zip(engines, results, strict=True):
            images[engine.name] = result.pop("_image")
            result["gpu_memory_mib"] = gpus.process_memory_mib(engine.process.pid if engine.process else None)
            phase["engines"].append({"name": engine.name, "label": engine.device.label,
                                     "start_s": ready_s.get(engine.name), **result})
        phase["log"] = str(settings.data_dir / "logs" / "engine-0.log")
        return phase, images
    finally:
        manager.stop()


def snapshot_phase(setup: Setup, gpus: GpuSampler) -> tuple[dict[str, Any], bytes]:
    """The Modal snapshot path: start with CUDA hidden, hand the GPU over, run."""
    base = setup.work / "snapshot"
    link_checkpoint(base / "comfyui", setup.checkpoint)
    spec_file = base / "app_spec.json"
    spec_file.write_text(json.dumps(app_spec(setup.workload).to_dict()))
    worker = ContainerWorker(WorkerPaths(comfyui_dir=setup.install.comfyui_dir, python=setup.install.python,
                                         base_dir=base / "comfyui", spec_file=spec_file))
    gpus.phase("snapshot start")
    began = time.perf_counter()
    try:
        worker.start(cuda_hidden=True)
        assert worker.engine is not None and worker.engine.started_at is not None
        phase: dict[str, Any] = {"start_hidden_s": time.monotonic() - worker.engine.started_at,
                                 "worker_start_s": time.perf_counter() - began,
                                 "device_while_hidden": snapshot_device(worker.engine.url),
                                 "log": str(worker.engine.launch.log_path)}
        gpus.phase("hand-over")
        if not container_has_gpu():
            phase["hand_over"] = "skipped: no GPU"
        elif setup.cpu_only:
            phase["hand_over"] = "skipped: --cpu"
        else:
            pid = worker.engine.pid
            began = time.perf_counter()
            device = worker.hand_over_gpu()
            phase["hand_over_s"] = time.perf_counter() - began
            restarted = worker.engine.pid != pid
            phase["hand_over"] = (f"restarted on {device}: torch could not see the GPU after the hand-over"
                                  if restarted else f"handed over: {device}")
            phase["hand_over_restarted"] = restarted
        phase["device_after_hand_over"] = snapshot_device(worker.engine.url)
        if "hand_over_s" not in phase:
            # ComfyUI asks CUDA for the checkpoint's dtype: an engine started with CUDA hidden loads no model until
            # a GPU is shown to it. With none to show, the runs go to a plain CPU start of the same engine.
            restart_on_cpu(worker)
            phase["runs_on"] = "a plain CPU start (no GPU to hand over: the engine started with CUDA hidden " \
                               "cannot load a checkpoint without one)"
        gpus.phase("snapshot runs")
        result = asyncio.run(timed_runs(worker.engine.url, setup, "snapshot"))
        image = result.pop("_image")
        phase.update(result)
        phase["gpu_memory_mib"] = gpus.process_memory_mib(worker.engine.pid)
        phase["container_run"] = asyncio.run(container_run(worker))
        gpus.phase("idle")
        return phase, image
    finally:
        worker.stop()


def restart_on_cpu(worker: ContainerWorker) -> None:
    """The worker's engine again, as a CPU engine (`--cpu`), same folders and log."""
    assert worker.engine is not None
    launch = worker.engine.launch
    worker.stop()
    worker.engine = EngineProcess(replace(launch, cpu=True, extra_env=(("COMFY_PUBLISHER_SNAPSHOT", "1"),)))
    worker.engine.start()
    worker.device = "cpu"


def snapshot_device(url: str) -> dict[str, Any]:
    """The snapshot helper's view: the device ComfyUI would compute on now, and CUDA_VISIBLE_DEVICES."""
    response = httpx.get(f"{url}/comfy-publisher/device", timeout=30, trust_env=False)
    if response.status_code != 200:  # e.g. CUDA shown but unusable: the engine's own error, kept for the report
        return {"device": None, "error": f"HTTP {response.status_code}: {response.text[:500]}"}
    return response.json()


async def container_run(worker: ContainerWorker) -> dict[str, Any]:
    """One run as a deployment's caller sends it: values only, through the worker's own run path."""
    began = time.perf_counter()
    try:
        result = await worker.run({"run_id": uuid.uuid4().hex, "inputs": {"prompt": PROMPT, "seed": 7}})
    finally:
        await worker.aclose()
    outputs = result.get("outputs") or []
    return {"status": result["status"], "wall_s": time.perf_counter() - began, "outputs": len(outputs),
            **({"error": result["error"]} if "error" in result else {})}


def app_spec(workload: Workload) -> AppSpec:
    """The txt2img app a deployment of this check would bake in: prompt and seed as inputs, the image out."""
    workflow = txt2img(CHECKPOINT_NAME, size=workload.size, steps=workload.steps, prefix="gpu_check/container/img")
    sampler = node_of(workflow, "KSampler")
    positive = workflow[sampler]["inputs"]["positive"][0]
    return AppSpec(
        workflow=workflow,
        inputs=(AppInput(node=positive, input="text", type="text", name="prompt"),
                AppInput(node=sampler, input="seed", type="seed", name="seed", min=0, max=0xFFFFFFFFFFFFFFFF)),
        outputs=(AppOutput(node_of(workflow, "SaveImage"), "image", "Image"),),
    )


def _say(message: str) -> None:
    print(message, flush=True)
