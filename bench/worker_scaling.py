"""Throughput of the service with 1 and 2 engine workers on the same workload: batches of runs submitted at once
(async), wall time until every one has succeeded, runs/s, and the ratio 2 workers / 1 worker.

    python -m bench.worker_scaling [--runs 32] [--rounds 2] [--size 128] [--steps 4] [--engine-threads 1] [--no-bare]

The workload is txt2img with the tests' tiny random-weight SD1.5 checkpoint (synthesized once, no download):
compute on the engine dominates a run (~1 s at 128x128, 4 steps, one thread) while the app's own work is a few
tens of ms. Each engine is held to --engine-threads torch threads (OMP_NUM_THREADS, inherited from the app), so
one engine uses one core and two engines fit two cores instead of four threads fighting over them.

One app per worker count (`launch.py --workers N`, bundled engines, each its own data dir) is started up front
and warmed until every engine has loaded the model; idle, an app and its engines cost no CPU. The measured
batches then alternate between the apps, order swapped each round (ABBA), so drift on the machine hits all of
them alike. The same batches also run straight on the engines of the 2-worker app (no app in the way, "bare"),
which is the ceiling the machine allows: app/bare says what the app costs, bare 2w/1w what two cores give.
Completion is followed by polling the oldest unfinished run only: a couple of requests a second whatever the batch
size, so following the runs takes no CPU from the engines; the wall time comes from the server's own stamps.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.service import (
    REPO,
    RESULTS_DIR,
    AppProcess,
    CpuWindow,
    busy_warning,
    common_arguments,
    finish,
    link_checkpoint,
    progress,
    publish,
    sched_seconds,
    thread_env,
    verdict,
)
from runtimes.comfy.client import ComfyClient
from runtimes.contract import FINAL_STATUSES

RESULTS = RESULTS_DIR / "worker_scaling.json"
PROFILE = RESULTS_DIR / "worker_scaling.prof"
TARGET_RATIO = 1.8
TARGET_APP_OVER_BARE = 0.95  # with the most workers measured: what the app keeps of the bare engines' throughput
SUBMIT_CONCURRENCY = 8
POLL_S = 0.5  # light on the server; the wall time comes from the server's stamps anyway
WARMUP_ROUNDS = 10


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


async def wait_all(http: httpx.AsyncClient, ids: list[str]) -> list[dict[str, Any]]:
    """Every run's final record. Polls one run at a time (the oldest unfinished one: the queue is FIFO), so
    following a batch costs the server a few requests a second; the wall time comes from the server's own
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


def finished_at(run: dict[str, Any]) -> float:
    return datetime.fromisoformat(run["finished_at"]).timestamp()


@dataclass
class Side:
    """One way of running the workload (the app with N workers, or N engines alone) and what its measured
    batches added up to."""

    label: str
    workers: int
    pids: list[int] = field(default_factory=list)  # engines first, then the app server if any
    runs: list[dict[str, Any]] = field(default_factory=list)  # {exec_ms, worker}
    wall_s: float = 0.0
    on_cpu_s: dict[int, float] = field(default_factory=dict)
    waiting_s: dict[int, float] = field(default_factory=dict)
    window: CpuWindow | None = None  # the machine's CPU over the measured batches

    async def batch(self, count: int) -> tuple[float, list[dict[str, Any]]]:
        """Run `count` runs at once; (seconds until the last one ended, the runs)."""
        raise NotImplementedError

    async def measure(self, count: int) -> None:
        self.window = self.window or CpuWindow({str(pid): pid for pid in self.pids})
        before = {pid: sched_seconds(pid) for pid in self.pids}
        with self.window:
            wall_s, runs = await self.batch(count)
        after = {pid: sched_seconds(pid) for pid in self.pids}
        self.runs += runs
        self.wall_s += wall_s
        for pid in self.pids:
            self.on_cpu_s[pid] = self.on_cpu_s.get(pid, 0.0) + after[pid][0] - before[pid][0]
            self.waiting_s[pid] = self.waiting_s.get(pid, 0.0) + after[pid][1] - before[pid][1]

    def summary(self) -> dict[str, Any]:
        exec_ms = [float(run["exec_ms"]) for run in self.runs]
        per_worker: dict[str, int] = {}
        for run in self.runs:
            per_worker[run["worker"]] = per_worker.get(run["worker"], 0) + 1
        engines = self.pids[:self.workers]
        n, engine_time = len(self.runs), self.wall_s * self.workers
        server_cpu_s = sum(self.on_cpu_s[pid] for pid in self.pids[self.workers:])
        return {
            "side": self.label,
            "workers": self.workers,
            "runs": n,
            "wall_s": self.wall_s,
            "throughput_rps": n / self.wall_s,
            "exec_ms_mean": statistics.fmean(exec_ms),
            "exec_ms_p50": statistics.median(exec_ms),
            # Engine time per run not spent executing it: hand-offs between runs (the app's bookkeeping of a
            # run's end and the next one's start, the client's polling) and the batch's ramp-up and tail.
            "gap_ms_per_run": self.wall_s * self.workers * 1000 / n - statistics.fmean(exec_ms),
            "runs_per_worker": per_worker,
            "engine_cpu_ms_per_run": sum(self.on_cpu_s[pid] for pid in engines) * 1000 / n,
            # Per engine over the measured windows: the share it ran on a CPU, and the share it was runnable
            # but found no CPU free (contention on the machine, not the app's scheduling).
            "engine_busy": sum(self.on_cpu_s[pid] for pid in engines) / engine_time,
            "engine_cpu_wait": sum(self.waiting_s[pid] for pid in engines) / engine_time,
            "server_cpu_ms_per_run": server_cpu_s * 1000 / n if self.pids[self.workers:] else None,
            **{k: v for k, v in (self.window.summary() if self.window else {}).items()
               if k in ("machine_cores", "client_cores", "other_cores")},
        }


@dataclass
class AppSide(Side):
    """The service: async POST .../runs for the whole batch, then polling until all have ended."""

    server: AppProcess | None = None
    http: httpx.AsyncClient | None = None
    slug: str = ""

    async def open(self, stack: contextlib.AsyncExitStack, checkpoint: str, args: argparse.Namespace) -> None:
        assert self.server is not None
        key = self.server.create_key("bench", admin=True)
        self.http = await stack.enter_async_context(httpx.AsyncClient(
            base_url=self.server.url, timeout=60.0, trust_env=False, headers={"Authorization": f"Bearer {key}"}))
        self.slug = publish(self.server.url, key, **txt2img_app(checkpoint, args.size, args.steps))
        self.pids = [engine["pid"] for engine in self.server.engines()] + [self.server.pid]

    async def batch(self, count: int) -> tuple[float, list[dict[str, Any]]]:
        assert self.http is not None
        started = time.time()  # wall clock: compared with the server's finished_at stamps (same machine)
        runs = await wait_all(self.http, await submit(self.http, self.slug, count))
        failed = [run for run in runs if run["status"] != "succeeded"]
        if failed:
            raise RuntimeError(f"{len(failed)} of {count} runs did not succeed, e.g. {failed[0]['status']}: "
                               f"{failed[0].get('error')}")
        wall_s = max(finished_at(run) for run in runs) - started
        return wall_s, [{"exec_ms": run["timings"]["exec_ms"], "worker": run["worker"]} for run in runs]

    async def warm_up(self) -> None:
        """Every engine loads the checkpoint on its first run (~1 s): batches of one run per worker until each
        worker has finished one, so the measured runs never pay it."""
        warmed: set[str] = set()
        for _ in range(WARMUP_ROUNDS):
            warmed |= {run["worker"] for run in (await self.batch(self.workers))[1]}
            if len(warmed) >= self.workers:
                return
        raise RuntimeError(f"only {sorted(warmed)} of {self.workers} workers finished a warm-up run")


@dataclass
class BareSide(Side):
    """The same prompts straight on engines, no app: runtimes.comfy.client (which bench.client_overhead shows
    costs nothing over the bare protocol), one prompt per engine at a time like the app's pool. The ceiling the
    machine allows."""

    clients: list[ComfyClient] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    workflow: dict[str, Any] = field(default_factory=dict)

    async def batch(self, count: int) -> tuple[float, list[dict[str, Any]]]:
        remaining, runs = count, []

        async def worker(client: ComfyClient, name: str) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                prompt = copy.deepcopy(self.workflow)
                prompt["3"]["inputs"]["seed"] = random.randrange(2**63)  # as the app's randomized seed
                # A folder per run, as the app gives each run (SaveImage lists its folder on every save).
                prompt["9"]["inputs"]["filename_prefix"] = f"bench/{uuid.uuid4().hex}/img"
                result = await client.run(prompt)
                await asyncio.gather(*(client.fetch_output(output) for output in result.outputs))
                runs.append({"exec_ms": result.exec_ms, "worker": name})

        started = time.perf_counter()
        await asyncio.gather(*(worker(client, name) for client, name in zip(self.clients, self.names, strict=True)))
        return time.perf_counter() - started, runs


async def measure(sides: list[Side], apps: list[AppSide], checkpoint: str, args: argparse.Namespace) -> None:
    async with contextlib.AsyncExitStack() as stack:
        for app in apps:
            await app.open(stack, checkpoint, args)
            await app.warm_up()
        for side in sides:
            if isinstance(side, BareSide):  # the engines of the app with the most workers, while that app idles
                host = max(apps, key=lambda a: a.workers)
                engines = (await asyncio.to_thread(host.server.engines) if host.server else [])[:side.workers]
                side.clients = [await stack.enter_async_context(ComfyClient(e["url"])) for e in engines]
                side.names = [e["name"] for e in engines]
                side.pids = [e["pid"] for e in engines]
                side.workflow = txt2img_app(checkpoint, args.size, args.steps)["workflow"]
        batch = args.runs // args.rounds
        progress(f"Measuring {args.rounds} batches of {batch} runs ({args.size}x{args.size}, {args.steps} steps) per "
                 f"side, alternating between {', '.join(side.label for side in sides)}")
        for round_no in range(args.rounds):
            for side in sides if round_no % 2 == 0 else sides[::-1]:
                await side.measure(batch)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        apps: list[AppSide] = []
        try:
            for workers in args.workers:
                data_dir = Path(tmp) / f"workers-{workers}"
                checkpoint = link_checkpoint(data_dir / "comfyui")  # the app's engines use DATA_DIR/comfyui
                # --profile: the app with the most workers (the one the app/bare target is about).
                profile = args.profile if workers == max(args.workers) else None
                server = AppProcess(data_dir, workers=workers, env=thread_env(args.engine_threads),
                                    engine_home=args.engine_home, profile=profile)
                progress(f"Starting an app with {workers} worker(s) (torch threads per engine: "
                         f"{args.engine_threads or 'default'})")
                apps.append(AppSide(f"app {workers}w", workers, server=server.start()))
            bare: list[Side] = [] if args.no_bare else [BareSide(f"bare {w}w", w) for w in args.workers]
            sides: list[Side] = [*apps, *bare]
            asyncio.run(measure(sides, apps, checkpoint, args))
        except BaseException:
            for app in apps:
                assert app.server is not None
                progress(f"--- last lines of the {app.workers}-worker app's log:\n{app.server.log_tail()}")
            raise
        finally:
            for app in apps:
                assert app.server is not None
                app.server.stop()
    return [side.summary() for side in sides]


def print_table(result: dict[str, Any]) -> None:
    print(f"{'side':<10}{'runs':>6}{'wall s':>9}{'runs/s':>9}{'exec ms':>10}{'gap ms':>9}{'engine CPU ms':>15}"
          f"{'busy':>7}{'wait':>7}{'server ms':>11}{'other cores':>13}")
    for row in result["rows"]:
        server = f"{row['server_cpu_ms_per_run']:>11.1f}" if row["server_cpu_ms_per_run"] is not None else f"{'-':>11}"
        print(f"{row['side']:<10}{row['runs']:>6}{row['wall_s']:>9.2f}{row['throughput_rps']:>9.3f}"
              f"{row['exec_ms_mean']:>10.1f}{row['gap_ms_per_run']:>9.1f}{row['engine_cpu_ms_per_run']:>15.1f}"
              f"{row['engine_busy']:>7.0%}{row['engine_cpu_wait']:>7.0%}" + server + f"{row['other_cores']:>13.2f}")
    print("(per run: exec = the engine's execution time, gap = engine time between runs, engine CPU = its CPU time, "
          "server = the app server's CPU time; per engine over the measured time: busy = on a CPU, wait = runnable "
          "but no CPU free; other = cores used by processes outside the benchmark, ~0 on a quiet machine)")
    warning = busy_warning(max(row.get("other_cores", 0.0) for row in result["rows"]))
    if warning:
        print(warning)
    print("throughput " + ", ".join(f"{name} x{ratio:.3f}" for name, ratio in result["ratios"].items()))
    target = result.get("target")
    if target:
        print(f"target: 2 workers >= {target['ratio_at_least']:g}x one worker (app): {verdict(target['met'])}")
    kept = result.get("target_app_over_bare")
    if kept:
        print(f"target: app/bare >= {kept['ratio_at_least']:g} with {kept['workers']} workers: {verdict(kept['met'])}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.worker_scaling",
        description="Throughput (runs/s) of the service with 1 and 2 engine workers on txt2img with a tiny "
                    "checkpoint: batches submitted at once, wall time until all have succeeded, interleaved.",
    )
    parser.add_argument("--runs", type=int, default=32, help="measured runs per side (default 32)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="batches per side, alternating ABBA (default 2: batches of runs/2)")
    parser.add_argument("--size", type=int, default=128, help="image width and height (default 128)")
    parser.add_argument("--steps", type=int, default=4, help="sampler steps per run (default 4)")
    parser.add_argument("--engine-threads", type=int, default=1,
                        help="torch threads per engine (default 1: an engine per core); 0 leaves torch's default")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="worker counts to compare, the first is the baseline (default: 1 2)")
    parser.add_argument("--no-bare", action="store_true",
                        help="skip the reference of the same runs straight on the engines (no app)")
    common_arguments(parser, RESULTS, PROFILE)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.runs < args.rounds or args.steps < 1 or args.size < 8 or min(args.workers) < 1:
        parser.error("--rounds, --steps and --workers must be >= 1, --runs >= --rounds, --size >= 8")
    args.engine_threads = args.engine_threads or None
    return args


def ratios(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Each side over the first side of its kind (N workers / the baseline), and the app over the bare engines
    at the same worker count."""
    by_side = {row["side"]: row for row in rows}
    out = {}
    for kind in ("app", "bare"):
        same = [row for row in rows if row["side"].startswith(kind)]
        for row in same[1:]:
            out[f"{kind} {row['workers']}w/{same[0]['workers']}w"] = row["throughput_rps"] / same[0]["throughput_rps"]
    for row in rows:
        bare = by_side.get(f"bare {row['workers']}w")
        if row["side"].startswith("app") and bare is not None:
            out[f"app/bare {row['workers']}w"] = row["throughput_rps"] / bare["throughput_rps"]
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = run(args)
    result: dict[str, Any] = {"rows": rows, "ratios": ratios(rows)}
    apps = {row["workers"]: row for row in rows if row["side"].startswith("app")}
    if 1 in apps and 2 in apps:
        ratio = apps[2]["throughput_rps"] / apps[1]["throughput_rps"]
        result["target"] = {"ratio_at_least": TARGET_RATIO, "ratio": ratio, "met": ratio >= TARGET_RATIO}
    most = max(args.workers)
    if (kept := result["ratios"].get(f"app/bare {most}w")) is not None:
        result["target_app_over_bare"] = {"workers": most, "ratio_at_least": TARGET_APP_OVER_BARE, "ratio": kept,
                                          "met": kept >= TARGET_APP_OVER_BARE}
    finish(result, args, print_table, runs=args.runs, rounds=args.rounds, size=args.size, steps=args.steps,
           engine_threads=args.engine_threads, workers=args.workers, bare=not args.no_bare)
    return 0


if __name__ == "__main__":
    sys.exit(main())
