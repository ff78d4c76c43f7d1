"""Status polls and event streams while real runs execute: does a busy engine slow the API's reads, and does the
app's memory grow?

    python -m bench.soak [--duration 60] [--baseline 20] [--polls-per-s 200] [--subscribers 50]

One bundled engine (torch held to --engine-threads) and one app server (`launch.py --comfyui-url` at it, SQLite in
a temporary data dir). Two phases, in this order, each with the same open-loop poller (`GET /api/runs/{id}` sent
every 1/rate s, whether or not the earlier ones have answered, so a slow server shows as latency, not as fewer
requests):
- baseline: the polls alone, of finished runs, with the engine idle;
- soak: the polls, of the runs in flight, while txt2img runs (the tests' tiny random-weight SD1.5 checkpoint)
  execute one after the other (a few kept queued) and `--subscribers` clients follow them over
  `/api/runs/{id}/events`, each moving on to another run in flight when its run ends.
It reports p50/p95/p99 of the polls per phase, the app's RSS before and after each phase, runs done, events read,
where the machine's cores went, and how late the poller itself sent (the load generator shares the machine).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench import probe
from bench.client_overhead import percentile
from bench.service import (
    RESULTS_DIR,
    AppProcess,
    CpuWindow,
    busy_warning,
    common_arguments,
    engine_and_app,
    finish,
    latency_summary,
    progress,
    publish,
    sched_seconds,
    thread_env,
)
from bench.worker_scaling import txt2img_app

RESULTS = RESULTS_DIR / "soak.json"
MAX_POLLS_IN_FLIGHT = 1000  # past this the poller skips a beat (and counts it): the server has fallen far behind
FINAL = {"succeeded", "failed", "cancelled", "timed_out"}


def rss_mib(pid: int) -> float:
    """Resident memory of a process, from /proc (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Starvation:
    """The server's threads: seconds on a CPU and seconds runnable but waiting for one, over a phase. Much waiting
    means the machine's cores were taken (by the engine, the load generator, other processes), not that the
    server idled on a lock or on I/O."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def __enter__(self) -> Starvation:
        self._start = sched_seconds(self.pid)
        self.on_cpu_s = self.waiting_s = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        on_cpu, waiting = sched_seconds(self.pid)
        self.on_cpu_s, self.waiting_s = on_cpu - self._start[0], waiting - self._start[1]

    def summary(self) -> dict[str, float]:
        return {"server_on_cpu_s": self.on_cpu_s, "server_waiting_for_cpu_s": self.waiting_s}


class Poller:
    """Open loop: a GET every 1/rate s of a run chosen by `pick`, each in its own task."""

    def __init__(self, http: httpx.AsyncClient, rate: float, pick: Callable[[], str | None]) -> None:
        self.http, self.rate, self.pick = http, rate, pick
        self.latencies_ms: list[float] = []
        self.lateness_ms: list[float] = []  # how far behind its schedule the poller sent (the client's own delay)
        self.errors: list[str] = []
        self.skipped = 0
        self._in_flight: set[asyncio.Task[None]] = set()

    async def _poll(self, run_id: str) -> None:
        started = time.perf_counter()
        try:
            response = await self.http.get(f"/api/runs/{run_id}")
            response.raise_for_status()
        except Exception as exc:  # counted: an error under load is a result
            self.errors.append(f"{type(exc).__name__}: {exc}"[:200])
            return
        self.latencies_ms.append((time.perf_counter() - started) * 1000)

    async def run(self, seconds: float) -> None:
        interval = 1.0 / self.rate
        start = time.perf_counter()
        for beat in range(int(seconds * self.rate)):
            due = start + beat * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            self.lateness_ms.append(max(0.0, time.perf_counter() - due) * 1000)
            run_id = self.pick()
            if run_id is None or len(self._in_flight) >= MAX_POLLS_IN_FLIGHT:
                self.skipped += 1
                continue
            task = asyncio.create_task(self._poll(run_id))
            self._in_flight.add(task)  # the event loop keeps only weak references to tasks
            task.add_done_callback(self._in_flight.discard)
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=60)

    def summary(self) -> dict[str, Any]:
        return {"sent": len(self.latencies_ms) + len(self.errors), "errors": len(self.errors),
                "error_examples": sorted(set(self.errors))[:5], "skipped": self.skipped,
                **({"latency": latency_summary(self.latencies_ms)} if self.latencies_ms else {}),
                "poller_late_p99_ms": percentile(self.lateness_ms, 99) if self.lateness_ms else 0.0}


class Runs:
    """Keeps `backlog` runs submitted and not finished, and knows which are in flight."""

    def __init__(self, http: httpx.AsyncClient, slug: str, backlog: int) -> None:
        self.http, self.slug, self.backlog = http, slug, backlog
        self.in_flight: list[str] = []
        self.finished: dict[str, str] = {}  # run id -> final status

    async def submit(self) -> str:
        response = await self.http.post(f"/api/apps/{self.slug}/runs", json={"inputs": {"prompt": "a lighthouse"}})
        if response.status_code != 202:
            raise RuntimeError(f"submission refused: {response.status_code} {response.text[:300]}")
        run_id: str = response.json()["id"]
        self.in_flight.append(run_id)
        return run_id

    async def feed(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            while len(self.in_flight) < self.backlog:
                await self.submit()
            for run_id in list(self.in_flight):
                status = (await self.http.get(f"/api/runs/{run_id}")).json()["status"]
                if status in FINAL:
                    self.in_flight.remove(run_id)
                    self.finished[run_id] = status
            await asyncio.sleep(0.25)

    async def drain(self) -> None:
        for run_id in list(self.in_flight):  # the app's stop interrupts the running one; none is left queued
            await self.http.post(f"/api/runs/{run_id}/cancel")

    def pick(self) -> str | None:
        return random.choice(self.in_flight) if self.in_flight else None


async def follow(http: httpx.AsyncClient, runs: Runs, stop: asyncio.Event, counts: dict[str, int]) -> None:
    """One SSE subscriber: follows a run in flight to its end, then another."""
    while not stop.is_set():
        run_id = runs.pick()
        if run_id is None:
            await asyncio.sleep(0.05)
            continue
        try:
            async with http.stream("GET", f"/api/runs/{run_id}/events") as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        counts["events"] += 1
                    if stop.is_set():
                        break
            counts["streams"] += 1
        except Exception:  # counted; the subscriber goes on with another run
            counts["errors"] += 1
            await asyncio.sleep(0.05)


async def measure(server: AppProcess, engine_pid: int | None, key: str, slug: str,
                  args: argparse.Namespace) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=MAX_POLLS_IN_FLIGHT, max_keepalive_connections=200)
    pids = {"server": server.pid, **({"engine": engine_pid} if engine_pid else {})}
    async with (httpx.AsyncClient(base_url=server.url, timeout=120.0, trust_env=False, headers=headers,
                                  limits=limits) as polls,
                httpx.AsyncClient(base_url=server.url, timeout=120.0, trust_env=False, headers=headers,
                                  limits=httpx.Limits(max_connections=args.subscribers + 8)) as streams,
                httpx.AsyncClient(base_url=server.url, timeout=120.0, trust_env=False, headers=headers) as control):
        runs = Runs(control, slug, args.backlog)
        progress("Warm-up: a few runs (the engine loads the checkpoint)")
        warm = [await runs.submit() for _ in range(args.warmup)]
        while runs.in_flight:
            for run_id in list(runs.in_flight):
                if (await control.get(f"/api/runs/{run_id}")).json()["status"] in FINAL:
                    runs.in_flight.remove(run_id)
            await asyncio.sleep(0.2)
        rss = {"start": rss_mib(server.pid)}

        progress(f"Baseline: {args.polls_per_s:g} polls/s of finished runs for {args.baseline:g} s, engine idle")
        baseline = Poller(polls, args.polls_per_s, lambda: random.choice(warm))
        # The probe polls a finished run from its own process: the server's delay without the load generator's.
        probe_url = f"{server.url}/api/runs/{warm[0]}"
        baseline_probe = probe.start(probe_url, args.baseline, headers)
        with CpuWindow(pids) as baseline_cpu, Starvation(server.pid) as baseline_sched:
            await baseline.run(args.baseline)
        probes = {"baseline": await asyncio.to_thread(probe.collect, baseline_probe)}
        rss["after_baseline"] = rss_mib(server.pid)

        progress(f"Soak: {args.polls_per_s:g} polls/s of runs in flight, {args.subscribers} event streams, runs "
                 f"executing, for {args.duration:g} s")
        stop = asyncio.Event()
        counts = {"events": 0, "streams": 0, "errors": 0}
        await runs.submit()  # something in flight before the poller and the subscribers start
        feeder = asyncio.create_task(runs.feed(stop))
        subscribers = [asyncio.create_task(follow(streams, runs, stop, counts)) for _ in range(args.subscribers)]
        soak = Poller(polls, args.polls_per_s, runs.pick)
        soak_probe = probe.start(probe_url, args.duration, headers)
        with CpuWindow(pids) as soak_cpu, Starvation(server.pid) as soak_sched:
            await soak.run(args.duration)
        probes["soak"] = await asyncio.to_thread(probe.collect, soak_probe)
        stop.set()
        await feeder
        await runs.drain()
        await asyncio.wait(subscribers, timeout=60)
        rss["after_soak"] = rss_mib(server.pid)

    done = list(runs.finished.values())
    b, s = baseline.summary(), soak.summary()
    return {
        "baseline": {**b, "cpu": baseline_cpu.summary(), "sched": baseline_sched.summary(),
                     "probe": _probe_summary(probes["baseline"])},
        "soak": {**s, "cpu": soak_cpu.summary(), "sched": soak_sched.summary(), "probe": _probe_summary(probes["soak"]),
                 "runs_finished": len(done),
                 "runs_succeeded": done.count("succeeded"), "event_streams": counts},
        "p99_ratio": (s["latency"]["p99_ms"] / b["latency"]["p99_ms"]) if "latency" in s and "latency" in b else None,
        "server_rss_mib": rss,
    }


def _probe_summary(latencies: list[float]) -> dict[str, Any]:
    return {"requests": len(latencies), **(latency_summary(latencies) if latencies else {})}


def print_table(result: dict[str, Any]) -> None:
    print(f"{'phase':<10}{'polls':>7}{'errors':>8}{'skipped':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"
          f"{'poller late p99':>17}{'cores: server':>15}{'engine':>8}{'client':>8}{'other':>7}")
    for name in ("baseline", "soak"):
        phase = result[name]
        lat, cpu = phase.get("latency", {}), phase["cpu"]
        print(f"{name:<10}{phase['sent']:>7}{phase['errors']:>8}{phase['skipped']:>9}{lat.get('p50_ms', 0):>9.2f}"
              f"{lat.get('p95_ms', 0):>9.2f}{lat.get('p99_ms', 0):>9.2f}{lat.get('max_ms', 0):>9.1f}"
              f"{phase['poller_late_p99_ms']:>14.1f} ms{cpu['server_cores']:>15.2f}{cpu.get('engine_cores', 0):>8.2f}"
              f"{cpu['client_cores']:>8.2f}{cpu['other_cores']:>7.2f}")
    for name in ("baseline", "soak"):
        seen = result[name]["probe"]
        if seen["requests"]:
            print(f"{name}: the probe (its own process, {seen['requests']} polls one at a time) saw p50 "
                  f"{seen['p50_ms']:.2f} ms, p99 {seen['p99_ms']:.2f} ms, max {seen['max_ms']:.1f} ms")
    for name in ("baseline", "soak"):
        sched = result[name]["sched"]
        print(f"{name}: the server's threads ran {sched['server_on_cpu_s']:.1f} s and waited "
              f"{sched['server_waiting_for_cpu_s']:.1f} s for a free core")
    soak = result["soak"]
    streams = soak["event_streams"]
    print(f"soak: {soak['runs_finished']} runs finished ({soak['runs_succeeded']} succeeded); event streams: "
          f"{streams['streams']} followed to their end, {streams['events']} events, {streams['errors']} errors")
    if result["p99_ratio"] is not None:
        print(f"poll p99 soak/baseline: x{result['p99_ratio']:.2f}")
    rss = result["server_rss_mib"]
    print(f"app RSS: {rss['start']:.0f} MiB at the start, {rss['after_baseline']:.0f} after the baseline, "
          f"{rss['after_soak']:.0f} after the soak ({rss['after_soak'] - rss['start']:+.0f} MiB)")
    warning = busy_warning(max(result[name]["cpu"]["other_cores"] for name in ("baseline", "soak")))
    if warning:
        print(warning)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description="Status-poll latency and the app's memory while real runs execute and clients follow them "
                    "over server-sent events, against the same polls with the engine idle.",
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of the soak phase (default 60)")
    parser.add_argument("--baseline", type=float, default=20.0,
                        help="seconds of the baseline phase, polls only (default 20)")
    parser.add_argument("--polls-per-s", type=float, default=200.0, help="status polls a second (default 200)")
    parser.add_argument("--subscribers", type=int, default=50, help="SSE clients following runs (default 50)")
    parser.add_argument("--backlog", type=int, default=3, help="runs kept submitted and unfinished (default 3)")
    parser.add_argument("--size", type=int, default=128, help="image size of the txt2img runs (default 128)")
    parser.add_argument("--steps", type=int, default=4, help="sampler steps of the txt2img runs (default 4)")
    parser.add_argument("--warmup", type=int, default=3, help="runs before measuring (default 3)")
    parser.add_argument("--engine-threads", type=int, default=1,
                        help="torch threads of the engine (default 1: it takes one core, not all)")
    common_arguments(parser, RESULTS)
    args = parser.parse_args(argv)
    if min(args.duration, args.baseline, args.polls_per_s) <= 0 or min(args.subscribers, args.backlog,
                                                                        args.warmup) < 1:
        parser.error("--duration, --baseline and --polls-per-s must be > 0; --subscribers, --backlog, --warmup >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.update(thread_env(args.engine_threads or None))  # inherited by the engine process only
    with engine_and_app("bench-soak-", args.engine_home) as bench:
        slug = publish(bench.server.url, bench.key, **txt2img_app(bench.checkpoint, args.size, args.steps))
        progress(f"app pid {bench.server.pid}, engine pid {bench.engine_pid}")
        result = asyncio.run(measure(bench.server, bench.engine_pid, bench.key, slug, args))
    finish(result, args, print_table, duration_s=args.duration, baseline_s=args.baseline,
           polls_per_s=args.polls_per_s, subscribers=args.subscribers, backlog=args.backlog, image=args.size,
           steps=args.steps, engine_threads=args.engine_threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
