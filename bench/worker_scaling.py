"""Throughput of the service with 1 and 2 engine workers on the same workload: K runs submitted at once (async),
wall time until every one has succeeded, runs/s, and the ratio 2 workers / 1 worker.

    python -m bench.worker_scaling [--runs 48] [--size 128] [--steps 4] [--engine-threads 1] [--workers 1 2]

The workload is txt2img with the tests' tiny random-weight SD1.5 checkpoint (synthesized once, no download):
compute on the engine dominates a run (~1 s at 128x128, 4 steps, one thread) while the app's own work is a few
ms. Each engine is held to --engine-threads torch threads (OMP_NUM_THREADS, inherited from the app), so one
engine uses one core and two engines fit two cores instead of four threads fighting over them. For each worker
count the app is started afresh (`launch.py --workers N`, bundled engines, its own data dir), warmed up until
every engine has loaded the model, and then measured. Completion is followed by polling the oldest unfinished
run only (not over SSE: each open /events stream holds one of the server's 15 DB connections, so K streams at
once starve the server; see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.client_overhead import DEFAULT_ENGINE_HOME
from bench.service import (
    FINAL_STATUSES,
    REPO,
    RESULTS_DIR,
    AppProcess,
    cpu_seconds,
    link_checkpoint,
    publish,
    thread_env,
    verdict,
)

RESULTS = RESULTS_DIR / "worker_scaling.json"
TARGET_RATIO = 1.8
SUBMIT_CONCURRENCY = 8
POLL_S = 0.2


def txt2img_app(checkpoint: str, size: int, steps: int) -> dict[str, Any]:
    """The shipped SD1.5 graph on the tiny checkpoint; the seed is published (randomized: no two runs are the
    same, so the engine's cache never skips the sampler), so is the prompt text."""
    workflow = json.loads((REPO / "workflows" / "txt2img_sd15.json").read_text())
    workflow["4"]["inputs"]["ckpt_name"] = checkpoint
    workflow["5"]["inputs"].update(width=size, height=size, batch_size=1)
    workflow["3"]["inputs"]["steps"] = steps
    return {"name": "Bench txt2img", "slug": "bench-t2i", "workflow": workflow,
            "inputs": [{"node": "6", "input": "text", "name": "prompt"},
                       {"node": "3", "input": "seed", "name": "seed", "randomize": True}]}


async def wait_all(http: httpx.AsyncClient, ids: list[str]) -> list[dict[str, Any]]:
    """Every run's final record. Polls one run at a time (the oldest unfinished one: the queue is FIFO), so
    following K runs costs the server a few requests a second; the wall time comes from the server's own
    `finished_at` stamps, so the poll interval does not blur it."""
    runs: dict[str, dict[str, Any]] = {}
    pending = list(ids)
    while pending:
        run = (await http.get(f"/api/runs/{pending[0]}")).json()
        if run["status"] in FINAL_STATUSES:
            runs[run["id"]] = run
            pending.pop(0)
        else:
            await asyncio.sleep(POLL_S)
    return [runs[run_id] for run_id in ids]


async def submit(http: httpx.AsyncClient, slug: str, count: int) -> list[str]:
    """`count` async submissions, SUBMIT_CONCURRENCY in flight; every one must be accepted (202)."""
    ids: list[str] = []
    remaining = count

    async def submitter() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            response = await http.post(f"/api/apps/{slug}/runs", json={"inputs": {"prompt": "a lighthouse"}})
            if response.status_code != 202:
                raise RuntimeError(f"submission refused: {response.status_code} {response.text[:300]}")
            ids.append(response.json()["id"])

    await asyncio.gather(*(submitter() for _ in range(SUBMIT_CONCURRENCY)))
    return ids


async def run_batch(http: httpx.AsyncClient, slug: str, count: int) -> list[dict[str, Any]]:
    return await wait_all(http, await submit(http, slug, count))


def finished_at(run: dict[str, Any]) -> float:
    return datetime.fromisoformat(run["finished_at"]).timestamp()


async def measure_server(server: AppProcess, key: str, slug: str, workers: int, runs: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, timeout=60.0, trust_env=False,
                                 headers={"Authorization": f"Bearer {key}"}) as http:
        # Warm-up: every engine loads the checkpoint on its first run (~1 s); batches of one run per worker
        # until each worker has finished one, so the measured runs never pay it.
        warmed: set[str] = set()
        for _ in range(10):
            warmed |= {run["worker"] for run in await run_batch(http, slug, workers) if run["status"] == "succeeded"}
            if len(warmed) >= workers:
                break
        if len(warmed) < workers:
            raise RuntimeError(f"only {sorted(warmed)} of {workers} workers finished a warm-up run")
        engine_pids = server.engine_pids()
        cpu_before = {pid: cpu_seconds(pid) for pid in [server.pid, *engine_pids]}
        started = time.time()  # wall clock: compared with the server's finished_at stamps (same machine)
        finished = await run_batch(http, slug, runs)
        wall_s = max(finished_at(run) for run in finished) - started
        # CPU is read when the client has seen the last run end (<= POLL_S later): a slight overcount.
        cpu = {pid: cpu_seconds(pid) - before for pid, before in cpu_before.items()}
    failed = [run for run in finished if run["status"] != "succeeded"]
    if failed:
        raise RuntimeError(f"{len(failed)} of {runs} runs did not succeed, e.g. {failed[0]['status']}: "
                           f"{failed[0].get('error')}")
    exec_ms = [float(run["timings"]["exec_ms"]) for run in finished]
    per_worker: dict[str, int] = {}
    for run in finished:
        per_worker[run["worker"]] = per_worker.get(run["worker"], 0) + 1
    return {
        "workers": workers,
        "runs": runs,
        "wall_s": wall_s,
        "throughput_rps": runs / wall_s,
        "exec_ms_mean": statistics.fmean(exec_ms),
        "exec_ms_p50": statistics.median(exec_ms),
        "runs_per_worker": per_worker,
        # Cores kept busy over the measured window: the engines' and the app server's own.
        "engine_cores": sum(cpu[pid] for pid in engine_pids) / wall_s,
        "server_cores": cpu[server.pid] / wall_s,
        "server_cpu_ms_per_run": cpu[server.pid] * 1000 / runs,
    }


def measure_workers(workers: int, args: argparse.Namespace, progress: Callable[[str], None]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-workers{workers}-") as tmp:
        data_dir = Path(tmp)
        checkpoint = link_checkpoint(data_dir / "comfyui")  # the app's engines use DATA_DIR/comfyui as base
        server = AppProcess(data_dir, workers=workers, env=thread_env(args.engine_threads),
                            extra=("--engine-home", str(args.engine_home)))
        progress(f"Starting the app with {workers} worker(s) (engine threads: {args.engine_threads or 'default'})")
        server.start()
        try:
            key = server.create_key("bench", admin=True)
            slug = publish(server.url, key, **txt2img_app(checkpoint, args.size, args.steps))
            progress(f"Measuring {args.runs} runs of {args.size}x{args.size}, {args.steps} steps, "
                     f"on {workers} worker(s)")
            return asyncio.run(measure_server(server, key, slug, workers, args.runs))
        except BaseException:
            progress(f"--- last lines of the app's log ({server.log}):\n{server.log_tail()}")
            raise
        finally:
            server.stop()


def print_table(result: dict[str, Any]) -> None:
    print(f"{'workers':<9}{'runs':>6}{'wall s':>9}{'runs/s':>9}{'exec ms':>10}{'engine cores':>14}"
          f"{'server cores':>14}{'server ms/run':>15}")
    for row in result["rows"]:
        print(f"{row['workers']:<9}{row['runs']:>6}{row['wall_s']:>9.2f}{row['throughput_rps']:>9.3f}"
              f"{row['exec_ms_mean']:>10.1f}{row['engine_cores']:>14.2f}{row['server_cores']:>14.2f}"
              f"{row['server_cpu_ms_per_run']:>15.1f}")
    for name, ratio in result["ratios"].items():
        print(f"throughput {name}: x{ratio:.3f}")
    target = result.get("target")
    if target:
        print(f"target: 2 workers >= {target['ratio_at_least']:g}x one worker: {verdict(target['met'])}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.worker_scaling",
        description="Throughput (runs/s) of the service with 1 and 2 engine workers on txt2img with a tiny "
                    "checkpoint: K runs submitted at once, wall time until all have succeeded.",
    )
    parser.add_argument("--runs", type=int, default=48, help="measured runs per worker count (default 48)")
    parser.add_argument("--size", type=int, default=128, help="image width and height (default 128)")
    parser.add_argument("--steps", type=int, default=4, help="sampler steps per run (default 4)")
    parser.add_argument("--engine-threads", type=int, default=1,
                        help="torch threads per engine (default 1: an engine per core); 0 leaves torch's default")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="worker counts to measure, the first is the baseline (default: 1 2)")
    parser.add_argument("--engine-home", type=Path, default=DEFAULT_ENGINE_HOME,
                        help=f"where the bundled engine is installed (default {DEFAULT_ENGINE_HOME})")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results file (default {RESULTS})")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.steps < 1 or args.size < 8 or any(w < 1 for w in args.workers):
        parser.error("--runs, --steps and --workers must be >= 1, --size >= 8")
    args.engine_threads = args.engine_threads or None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    rows = [measure_workers(workers, args, progress) for workers in args.workers]
    base = rows[0]
    result: dict[str, Any] = {
        "rows": rows,
        "ratios": {f"{row['workers']}w/{base['workers']}w": row["throughput_rps"] / base["throughput_rps"]
                   for row in rows[1:]},
    }
    two = next((row for row in rows if row["workers"] == 2), None)
    if base["workers"] == 1 and two is not None:
        ratio = two["throughput_rps"] / base["throughput_rps"]
        result["target"] = {"ratio_at_least": TARGET_RATIO, "ratio": ratio, "met": ratio >= TARGET_RATIO}
    result["settings"] = {
        "runs": args.runs, "size": args.size, "steps": args.steps, "engine_threads": args.engine_threads,
        "workers": args.workers, "python": platform.python_version(), "cpus": os.cpu_count(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    print_table(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
