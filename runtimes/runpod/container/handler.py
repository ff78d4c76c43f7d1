"""The RunPod worker: one ComfyUI engine per worker, started before the first job, and an async handler that runs
each job on it through the shared serverless worker (the same `execute_run` as the local pool).

The generated bundle's handler.py is only:

    from runtimes.runpod.container.handler import serve
    CONTAINER_PATHS = {"comfyui_dir": ..., "python": ..., "base_dir": ..., "spec_file": ..., "models_dir": ...}
    serve(CONTAINER_PATHS)

so `python handler.py --rp_serve_api` (the SDK's local API server) works as on the platform. The handler is async:
a cancelled or timed-out job cancels its run, which is stopped on the engine before the task ends. Request shapes:
request.py; output shapes: outputs.py; progress: progress.py.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import runpod
from runpod.serverless.modules.rp_logger import RunPodLogger

from runtimes.contract import run_error
from runtimes.inputs import ImageLimits
from runtimes.runpod.container.outputs import Bucket, BucketError, failure_output, success_output
from runtimes.runpod.container.progress import PROGRESS_EVERY_S, ProgressReporter
from runtimes.runpod.container.request import DEFAULT_LIMITS, RequestRefused, run_request
from runtimes.serverless.fetch_models import ModelFetchError, ensure_models
from runtimes.serverless.worker import EngineWorker, WorkerPaths

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
# The engine is gone with the run (or before it): on the platform this worker is replaced after the job.
ENGINE_GONE = ("engine_lost",)


def serve(defaults: dict[str, str]) -> None:
    """Start the engine, then take jobs: `runpod.serverless.start` reads its own flags (--rp_serve_api, ...) from
    sys.argv. `defaults`: the container paths (each overridable by env COMFY_PUBLISHER_<NAME>), plus optional
    "models_dir" (a network volume's models; "" or absent: the models baked into the image) and "models_file" (the
    models.json whose files are fetched into models_dir when missing)."""
    quiet_logs()
    paths = WorkerPaths.from_env(defaults)
    worker = EngineWorker(paths)
    def setting(name: str) -> str:
        return os.environ.get(f"COMFY_PUBLISHER_{name.upper()}", defaults.get(name, ""))
    engine_problem = prepare_models(paths.base_dir, setting("models_dir"), setting("models_file"))
    try:
        worker.start()
    except Exception as exc:  # the worker still answers each job, with the reason, and asks to be replaced
        log.exception("the ComfyUI engine did not start")
        engine_problem = f"The ComfyUI engine of this worker did not start: {exc}"
    atexit.register(worker.stop)
    runpod.serverless.start({"handler": make_handler(worker, engine_problem=engine_problem)})


def quiet_logs() -> None:
    """INFO, not the SDK's default DEBUG: at DEBUG it logs each job's whole output (every file as base64, or its
    presigned URL). RUNPOD_LOG_LEVEL or --rp_log_level still choose."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per engine request otherwise
    if not (os.environ.get("RUNPOD_LOG_LEVEL") or os.environ.get("RUNPOD_DEBUG_LEVEL")):
        RunPodLogger().set_level("INFO")


def make_handler(worker: EngineWorker, *, limits: ImageLimits = DEFAULT_LIMITS,
                 progress_every_s: float = PROGRESS_EVERY_S, engine_problem: str | None = None) -> Handler:
    """The job handler runpod.serverless.start takes: job -> output (outputs.py's shapes); never raises for a
    job's own faults."""

    async def handle(job: dict[str, Any]) -> dict[str, Any]:
        try:
            request = await run_request(worker.spec, job, limits)
        except RequestRefused as exc:
            log.info("job %s refused: %s", job.get("id"), exc.record["type"])
            return failure_output(exc.record, run_id=exc.run_id)
        except Exception as exc:  # a fault of ours: the job still gets the contract's failure output
            log.exception("job %s: the request could not be read", job.get("id"))
            return failure_output(run_error("internal_error", f"The request could not be read: "
                                                              f"{type(exc).__name__}: {exc}"), run_id=None)
        try:
            bucket = Bucket.of_job(job, os.environ)  # a half-configured bucket fails before the run, not after it
        except BucketError as exc:
            return failure_output(run_error("upload_error", f"The outputs would have nowhere to go: {exc}"),
                                  run_id=request.run_id)
        if (problem := engine_problem or await _engine_problem(worker)) is not None:
            return failure_output(run_error("engine_lost", problem), run_id=request.run_id, refresh_worker=True)
        reporter = ProgressReporter(job, every_s=progress_every_s)
        try:
            result = await worker.execute(request, reporter.on_event)
        finally:
            reporter.stop()
        await reporter.settle()
        if result["status"] != "succeeded":
            record = result["error"]
            return failure_output(record, run_id=request.run_id, status=result["status"],
                                  refresh_worker=record.get("type") in ENGINE_GONE)
        try:
            return await success_output(result, str(job.get("id") or request.run_id), bucket)
        except BucketError as exc:
            return failure_output(run_error("upload_error", f"The run succeeded but its outputs could not be "
                                                            f"delivered: {exc}"), run_id=request.run_id)

    return handle


async def _engine_problem(worker: EngineWorker) -> str | None:
    try:
        await asyncio.to_thread(worker.check_ready)
    except Exception as exc:
        log.error("the engine is not ready: %s", exc)
        return f"This worker's ComfyUI engine is not running ({exc}); the job was not run: send it again."
    return None


def prepare_models(base_dir: Path, models_dir: str, models_file: str) -> str | None:
    """Models from a network volume: the files of `models_file` the volume lacks fetched into `models_dir` (once,
    by the first worker after a deploy), then linked as the engine's models/. Returns why jobs cannot run, or None."""
    if models_dir and models_file:
        volume = Path(models_dir).parent
        if not volume.is_dir():
            return (f"This app reads its models from a network volume, but {volume} is not mounted: attach the "
                    "network volume to the endpoint (deploy setting network_volume_id), or deploy with models=image.")
        try:
            Path(models_dir).mkdir(parents=True, exist_ok=True)
            fetched = ensure_models(Path(models_file), Path(models_dir), token=os.environ.get("HF_TOKEN") or None,
                                    log=log.info)
        except (ModelFetchError, OSError) as exc:
            log.error("models not fetched: %s", exc)
            return f"The app's models could not be fetched into the network volume: {exc}"
        if fetched:
            log.info("fetched into the volume: %s", ", ".join(fetched))
    use_models_dir(base_dir, models_dir)
    return None


def use_models_dir(base_dir: Path, models_dir: str) -> None:
    """A network volume's models as the engine's models/ (a link), unless the image has models of its own."""
    if not models_dir:
        return
    source, target = Path(models_dir), base_dir / "models"
    if not source.is_dir():
        log.warning("the models folder %s does not exist (is the network volume attached to the endpoint?); the "
                    "engine uses %s", source, target)
        return
    if target.is_symlink() or (target.is_dir() and any(target.iterdir())):
        return  # already linked, or the image's own models
    if target.is_dir():
        target.rmdir()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source, target_is_directory=True)
    log.info("models from %s", source)

