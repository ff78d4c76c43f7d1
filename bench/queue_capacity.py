"""The API with a deep queue: 10,000 runs submitted (async) while the engine is busy, then status queries and
history pages against that queue. Submissions/s, queries/s, latencies, and errors (there must be none).

    python -m bench.queue_capacity [--runs 10000] [--queries 5000] [--pages 40] [--concurrency 16]

One bundled engine (started like bench.client_overhead does, torch held to --engine-threads) and one app server
(`launch.py --comfyui-url` at it, `--max-queue 20000`, SQLite in a temporary data dir). The engine is kept busy by
a first run of a long txt2img (the tests' tiny random-weight checkpoint, 256x256, thousands of steps), so every
model-free demo run submitted after it stays queued: the queue only grows while we measure. At the end the app is
stopped (it interrupts the long run on the engine; queued runs stay in the throw-away database) and the engine
with it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bench.client_overhead import WORKFLOW, percentile
from bench.service import (
    RESULTS_DIR,
    AppProcess,
    CpuWindow,
    busy_warning,
    common_arguments,
    cpu_seconds,
    engine_and_app,
    finish,
    latency_summary,
    publish,
    thread_env,
    verdict,
)
from bench.worker_scaling import txt2img_app

RESULTS = RESULTS_DIR / "queue_capacity.json"
PROFILE = RESULTS_DIR / "queue_capacity.prof"
MAX_QUEUE = 20_000
BLOCKER_STEPS = 10_000  # at ~1 s a step on one thread: busy far longer than the benchmark runs
BLOCKER_SIZE = 256
PROBES = 50  # sequential requests per probe (a fifth of that for history pages)
SLICES = 10  # the submission rate is also reported per tenth of the runs: does it fall as the queue grows?


class Phase:
    """Many requests by `concurrency` workers: latency of each, failures, the server's CPU, the rate."""

    def __init__(self, server_pid: int, engine_pid: int | None) -> None:
        self.server_pid = server_pid
        self.latencies_ms: list[float] = []
        self.finished_at: list[float] = []  # perf_counter at each success, for rates over slices of the phase
        self.errors: list[str] = []
        self.wall_s = 0.0
        self.server_cpu_s = 0.0
        self.started = 0.0
        # The busy engine is named so that its core shows apart from the rest of the machine.
        self.window = CpuWindow({"server": server_pid, **({"engine": engine_pid} if engine_pid else {})})

    async def run(self, count: int, concurrency: int, request: Callable[[int], Awaitable[None]]) -> Phase:
        next_index = 0

        async def worker() -> None:
            nonlocal next_index
            while next_index < count:
                index, next_index = next_index, next_index + 1
                started = time.perf_counter()
                try:
                    await request(index)
                except Exception as exc:  # counted, not fatal: the error count is one of the results
                    self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                    continue
                now = time.perf_counter()
                self.latencies_ms.append((now - started) * 1000)
                self.finished_at.append(now)

        cpu_before = cpu_seconds(self.server_pid)
        started = time.perf_counter()
        with self.window:
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        self.wall_s = time.perf_counter() - started
        self.server_cpu_s = cpu_seconds(self.server_pid) - cpu_before
        self.started = started
        return self

    def summary(self) -> dict[str, Any]:
        n = len(self.latencies_ms) + len(self.errors)
        return {
            "requests": n,
            "ok": len(self.latencies_ms),
            "errors": len(self.errors),
            "error_examples": sorted(set(self.errors))[:5],
            "wall_s": self.wall_s,
            "rate_per_s": len(self.latencies_ms) / self.wall_s,
            "server_cpu_ms_per_request": self.server_cpu_s * 1000 / max(1, n),
            **({"latency": latency_summary(self.latencies_ms)} if self.latencies_ms else {}),
            "cpu": self.window.summary(),
        }

    def slice_rates(self, slices: int) -> list[float]:
        """Requests/s over each successive 1/slices of the completed requests."""
        times = sorted(self.finished_at)
        size = len(times) // slices
        if size == 0:
            return []
        edges = [self.started, *(times[(i + 1) * size - 1] for i in range(slices))]
        return [size / (b - a) for a, b in itertools.pairwise(edges)]


async def probe(server_pid: int, request: Callable[[int], Awaitable[httpx.Response]],
                count: int = 0) -> dict[str, float]:
    """`count` requests one after the other: p50 latency and the server's CPU per request."""
    count = count or PROBES
    latencies = []
    cpu_before = cpu_seconds(server_pid)
    for index in range(count):
        started = time.perf_counter()
        (await request(index)).raise_for_status()
        latencies.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": percentile(latencies, 50), "server_cpu_ms": (cpu_seconds(server_pid) - cpu_before) * 1000 / count}


def expect(response: httpx.Response, code: int) -> dict[str, Any]:
    if response.status_code != code:
        raise RuntimeError(f"HTTP {response.status_code} (expected {code}): {response.text[:200]}")
    return response.json()


async def measure(server: AppProcess, engine_pid: int | None, key: str, demo: str, blocker: str,
                  args: argparse.Namespace) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=server.url, timeout=60.0, limits=limits, trust_env=False,
                                 headers={"Authorization": f"Bearer {key}"}) as http:
        # The blocker: once it runs, the engine is busy and everything after it waits in the app's queue.
        block = expect(await http.post(f"/api/apps/{blocker}/runs", json={"inputs": {"steps": BLOCKER_STEPS}}), 202)
        deadline = time.monotonic() + 60
        while expect(await http.get(f"/api/runs/{block['id']}"), 200)["status"] != "running":
            if time.monotonic() > deadline:
                raise RuntimeError("the blocking run did not start within 60 s")
            await asyncio.sleep(0.1)

        ids: list[str] = [""] * args.runs

        async def submit(index: int) -> None:
            # A distinct colour per run: the same inputs would still be separate runs, but this is what callers do.
            run = expect(await http.post(f"/api/apps/{demo}/runs", json={"inputs": {"color": index}}), 202)
            if run["status"] != "queued":
                raise RuntimeError(f"a submitted run is {run['status']}, not queued: the engine is not blocked")
            ids[index] = run["id"]

        print(f"Submitting {args.runs} runs, {args.concurrency} in flight", file=sys.stderr, flush=True)
        submissions = await Phase(server.pid, engine_pid).run(args.runs, args.concurrency, submit)
        engine = expect(await http.get("/api/engine"), 200)
        accepted = [run_id for run_id in ids if run_id]

        async def status(_: int) -> None:
            run_id = random.choice(accepted)
            run = expect(await http.get(f"/api/runs/{run_id}"), 200)
            if run["status"] != "queued" or not run["queue_position"]:
                raise RuntimeError(f"run {run_id} is {run['status']} at position {run['queue_position']}")

        print(f"Querying the status of {args.queries} random queued runs", file=sys.stderr, flush=True)
        queries = await Phase(server.pid, engine_pid).run(args.queries, args.concurrency, status)

        async def page(_: int) -> None:
            body = expect(await http.get("/api/runs", params={"app": demo}), 200)  # newest first, 50 a page
            if len(body["runs"]) != 50:
                raise RuntimeError(f"a history page holds {len(body['runs'])} runs, not 50")

        # One at a time: a page's latency is what one caller sees, not a load test.
        pages = await Phase(server.pid, engine_pid).run(args.pages, 1, page)

        # Sequential probes, one request in flight (no queueing in the server): what one request costs at the
        # front and at the back of the queue, and the oldest history page against the newest (the default).
        first, last = accepted[:PROBES], accepted[-PROBES:]
        probes = {
            "status_front": await probe(server.pid, lambda i: http.get(f"/api/runs/{first[i]}")),
            "status_back": await probe(server.pid, lambda i: http.get(f"/api/runs/{last[-1 - i]}")),
            # The newest page (the default, the "history page" phase) holds the back of the queue; this the front.
            "history_oldest_page": await probe(server.pid, lambda i: http.get(
                "/api/runs", params={"app": demo, "before": accepted[50]}), count=PROBES // 5),
        }

    return {
        "submit": {**submissions.summary(), "rate_per_s_by_tenth": submissions.slice_rates(SLICES)},
        "queued_after_submit": engine["queued"],
        "status": queries.summary(),
        "history_page": pages.summary(),
        "probes": probes,
        "target": {"runs": args.runs, "accepted": len(accepted), "errors": len(submissions.errors),
                   "met": len(accepted) == args.runs and not submissions.errors and engine["queued"] == args.runs},
        # Not a target of the issue, but a deep queue must not make reads fail either.
        "reads_ok": not queries.errors and not pages.errors,
    }


def print_table(result: dict[str, Any]) -> None:
    print(f"{'phase':<16}{'requests':>9}{'errors':>8}{'per s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
          f"{'server CPU ms/req':>19}{'cores: server':>15}{'engine':>8}{'client':>8}{'other':>7}")
    for name, key in (("submit (async)", "submit"), ("status GET", "status"), ("history page", "history_page")):
        s = result[key]
        lat = s.get("latency", {})
        print(f"{name:<16}{s['requests']:>9}{s['errors']:>8}{s['rate_per_s']:>9.1f}{lat.get('p50_ms', 0):>9.2f}"
              f"{lat.get('p95_ms', 0):>9.2f}{lat.get('p99_ms', 0):>9.2f}{s['server_cpu_ms_per_request']:>19.2f}"
              f"{s['cpu']['server_cores']:>15.2f}{s['cpu'].get('engine_cores', 0):>8.2f}"
              f"{s['cpu']['client_cores']:>8.2f}{s['cpu']['other_cores']:>7.2f}")
    tenths = result["submit"]["rate_per_s_by_tenth"]
    if tenths:
        print("submissions/s by tenth of the queue: " + " ".join(f"{r:.0f}" for r in tenths)
              + f" (last/first x{tenths[-1] / tenths[0]:.2f})")
    page = result["history_page"]
    print("one request at a time (p50 latency / server CPU per request):")
    print(f"  {'history page, newest 50 (back)':<34}{page['latency']['p50_ms']:>9.2f} ms "
          f"{page['server_cpu_ms_per_request']:>9.2f} ms")
    for name, label in (("status_front", "status GET, front of the queue"), ("status_back", "status GET, back of the "
                        "queue"), ("history_oldest_page", "history page, oldest 50 (front)")):
        probe_result = result["probes"][name]
        print(f"  {label:<34}{probe_result['p50_ms']:>9.2f} ms {probe_result['server_cpu_ms']:>9.2f} ms")
    warning = busy_warning(max(result[key]["cpu"]["other_cores"] for key in ("submit", "status", "history_page")))
    if warning:
        print(warning)
    t = result["target"]
    print(f"queued after submitting: {result['queued_after_submit']}")
    print(f"target: {t['runs']} queued runs accepted without errors ({t['accepted']} accepted, {t['errors']} errors): "
          f"{verdict(t['met'])}")
    reads = result["status"]["errors"] + result["history_page"]["errors"]
    print(f"status queries and history pages all answered: {'yes' if result['reads_ok'] else f'NO ({reads} errors)'}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.queue_capacity",
        description="Submission rate, status-query rate and history-page latency of the API with a deep queue "
                    "(10,000 runs waiting behind a busy engine), and the errors (must be none).",
    )
    parser.add_argument("--runs", type=int, default=10_000, help="runs to queue (default 10000)")
    parser.add_argument("--queries", type=int, default=5_000, help="status queries afterwards (default 5000)")
    parser.add_argument("--pages", type=int, default=20, help="history pages (50 runs each) afterwards (default 20)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    parser.add_argument("--engine-threads", type=int, default=1,
                        help="torch threads of the busy engine (default 1: it takes one core, not all)")
    common_arguments(parser, RESULTS, PROFILE)
    args = parser.parse_args(argv)
    if min(args.runs, args.queries, args.pages, args.concurrency) < 1 or args.runs > MAX_QUEUE:
        parser.error(f"--runs (at most {MAX_QUEUE}), --queries, --pages and --concurrency must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.update(thread_env(args.engine_threads or None))  # inherited by the engine process only
    with engine_and_app("bench-queue-", args.engine_home, max_queue=MAX_QUEUE, profile=args.profile) as bench:
        server, key = bench.server, bench.key
        demo = publish(server.url, key, name="Bench invert", slug="bench-invert",
                       workflow=json.loads(WORKFLOW.read_text()),
                       inputs=[{"node": "1", "input": "color", "name": "color"}])
        blocker_app = txt2img_app(bench.checkpoint, BLOCKER_SIZE, 1)
        blocker_app.update(name="Bench blocker", slug="bench-blocker", timeout_s=3600)
        blocker_app["inputs"] = [*blocker_app["inputs"], {"node": "3", "input": "steps", "name": "steps",
                                                          "max": BLOCKER_STEPS}]
        blocker = publish(server.url, key, **blocker_app)
        result = asyncio.run(measure(server, bench.engine_pid, key, demo, blocker, args))
    finish(result, args, print_table, runs=args.runs, queries=args.queries, pages=args.pages,
           concurrency=args.concurrency, max_queue=MAX_QUEUE, engine_threads=args.engine_threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
