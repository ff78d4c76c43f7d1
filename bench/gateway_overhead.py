"""What the published API adds over the bare engine on the model-free workflow: p50/p95 latency of one run,
submit -> finished -> output bytes, both sides measured in the same run against the same engine.

    python -m bench.gateway_overhead [--runs 200] [--warmup 20] [--engine-home DIR]

"Bare" is bench.client_overhead's minimal protocol straight against the engine. "API" is what a caller of the
service does: POST /api/apps/{slug}/run (sync: it answers once the run is over) with the colour as the app's
`color` input, then GET the output's URL. The app server runs as its own process (`launch.py`, launching and
managing its one bundled engine) as a user starts it, with a real SQLite database in a temporary data dir; the
bare side talks to that same engine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.client_overhead import WORKFLOW, BareEngine, Prompts, Side, percentile, run_block
from bench.service import (
    RESULTS_DIR,
    AppProcess,
    CpuWindow,
    busy_warning,
    common_arguments,
    cpu_seconds,
    finish,
    progress,
    publish,
    verdict,
)

RESULTS = RESULTS_DIR / "gateway_overhead.json"
PROFILE = RESULTS_DIR / "gateway_overhead.prof"
TARGET_ADDED_P50_MS = 10.0


class ApiSide:
    """One run through the service: sync POST .../run, then GET its output (the bytes a caller wants)."""

    def __init__(self, base_url: str, key: str, slug: str) -> None:
        self.slug = slug
        # One keep-alive connection, as a real client library holds: connection set-up is not the gateway's cost.
        self.http = httpx.AsyncClient(base_url=base_url, timeout=60.0, trust_env=False,
                                      headers={"Authorization": f"Bearer {key}"})
        self.timings: list[dict[str, float | None]] = []  # the server's own view of each run
        self.last: dict[str, Any] = {}  # the last finished run, for the per-request floors

    async def request(self, prompt: dict[str, Any]) -> bytes:
        # Same colour as the prompt the bare side would get: identical work on the engine, never a cache hit.
        color = prompt["1"]["inputs"]["color"]
        response = await self.http.post(f"/api/apps/{self.slug}/run", json={"inputs": {"color": color}})
        run = response.json()
        if response.status_code != 200 or run.get("status") != "succeeded":
            raise RuntimeError(f"API run did not succeed: {response.status_code} {response.text[:500]}")
        output = await self.http.get(run["outputs"][0]["url"])
        output.raise_for_status()
        self.timings.append(run["timings"])
        self.last = run
        return output.content

    async def floors(self, count: int) -> dict[str, dict[str, float]]:
        """p50/p95 of single requests that make up a run's exchange, each alone and sequential: the HTTP +
        FastAPI floor (/healthz, no auth, no DB), a run's status (auth + DB reads + serialization), the output
        file. They say which part of the added time is per-request overhead rather than the run's life."""
        paths = {"healthz": "/healthz", "run_status": f"/api/runs/{self.last['id']}",
                 "output_file": self.last["outputs"][0]["url"]}
        result = {}
        for name, path in paths.items():
            latencies = []
            for _ in range(count):
                started = time.perf_counter()
                (await self.http.get(path)).raise_for_status()
                latencies.append((time.perf_counter() - started) * 1000)
            result[name] = {"p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95)}
        return result

    async def aclose(self) -> None:
        await self.http.aclose()


async def measure(engine_url: str, app_url: str, key: str, slug: str, runs: int, warmup: int,
                  server_pid: int, engine_pid: int | None) -> dict[str, Any]:
    prompts = Prompts(WORKFLOW)
    bare_engine = BareEngine(engine_url, concurrent=False)
    api_side = ApiSide(app_url, key, slug)
    try:
        await bare_engine.open()
        bare = Side("bare", bare_engine.request)
        api = Side("api", api_side.request)
        for side in (bare, api):  # warm-up: connections, the engine's first-run costs, the app's caches
            await run_block(side, prompts, warmup, 1, record=False)
        api_side.timings.clear()
        cpu_before = cpu_seconds(server_pid)
        window = CpuWindow({"server": server_pid, **({"engine": engine_pid} if engine_pid else {})})
        with window:
            # One request per side per round, order swapped each round (ABBA): drift hits both sides alike.
            for round_no in range(runs):
                order = (bare, api) if round_no % 2 == 0 else (api, bare)
                for side in order:
                    await run_block(side, prompts, 1, 1, record=True)
        server_cpu_s = cpu_seconds(server_pid) - cpu_before
        floors = await api_side.floors(max(20, runs // 2))
    finally:
        await bare_engine.close()
        await api_side.aclose()
    b, a = bare.summary(), api.summary()
    server = _server_view(api_side.timings, api.latencies_ms)
    # The server is idle while the bare side runs (bar the engine's broadcasts), so its CPU is the API side's.
    server["cpu_ms_per_run"] = server_cpu_s * 1000 / runs
    return {
        "bare": b,
        "api": a,
        "ratio_p50": a["p50_ms"] / b["p50_ms"],
        "ratio_p95": a["p95_ms"] / b["p95_ms"],
        "added_p50_ms": a["p50_ms"] - b["p50_ms"],
        "added_p95_ms": a["p95_ms"] - b["p95_ms"],
        "server": server,
        "request_floors": floors,
        "cpu": window.summary(),
        "target": {"added_p50_ms_below": TARGET_ADDED_P50_MS,
                   "met": a["p50_ms"] - b["p50_ms"] < TARGET_ADDED_P50_MS},
    }


def _server_view(timings: list[dict[str, float | None]], wall_ms: list[float]) -> dict[str, float]:
    """Medians of the server's own timings: where an API run's wall time goes.

    queue_ms: created -> a worker started it (queue hand-off + the 'started' DB write); exec_ms: the engine's
    execution_start -> end; total_ms: created -> finished (the DB write of the end excluded). The rest of the
    wall time (wall - total_ms) is the HTTP exchange, auth, input checks, the run's INSERT, the answer after
    the end and the output GET.
    """
    def median(key: str) -> float:
        return statistics.median(float(t[key] or 0.0) for t in timings)

    outside = [wall - float(t["total_ms"] or 0.0) for wall, t in zip(wall_ms, timings, strict=True)]
    return {"queue_ms_p50": median("queue_ms"), "exec_ms_p50": median("exec_ms"), "total_ms_p50": median("total_ms"),
            "outside_total_ms_p50": statistics.median(outside)}


def print_table(result: dict[str, Any]) -> None:
    print(f"{'side':<8}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for name in ("bare", "api"):
        s = result[name]
        print(f"{name:<8}{s['n']:>6}{s['p50_ms']:>10.2f}{s['p95_ms']:>10.2f}{s['p99_ms']:>10.2f}{s['mean_ms']:>10.2f}")
    print(f"api/bare: p50 x{result['ratio_p50']:.3f}, p95 x{result['ratio_p95']:.3f}; "
          f"added p50 {result['added_p50_ms']:+.2f} ms, p95 {result['added_p95_ms']:+.2f} ms")
    s = result["server"]
    print(f"server view (p50): created->started {s['queue_ms_p50']:.2f} ms, engine exec {s['exec_ms_p50']:.2f} ms, "
          f"created->finished {s['total_ms_p50']:.2f} ms, outside that {s['outside_total_ms_p50']:.2f} ms; "
          f"server CPU {s['cpu_ms_per_run']:.2f} ms/run")
    print("single API requests (p50): " + ", ".join(f"{name} {f['p50_ms']:.2f} ms"
                                                    for name, f in result["request_floors"].items()))
    c = result["cpu"]
    print(f"cores used while measuring: server {c['server_cores']:.2f}, engine {c.get('engine_cores', 0):.2f}, "
          f"this client {c['client_cores']:.2f}, other processes {c['other_cores']:.2f}")
    warning = busy_warning(c["other_cores"])
    if warning:
        print(warning)
    t = result["target"]
    print(f"target: added p50 < {t['added_p50_ms_below']:g} ms over the bare engine: {verdict(t['met'])}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gateway_overhead",
        description="Latency of one run on the model-free workflow: the bare engine vs the published API "
                    "(sync POST /api/apps/{slug}/run + GET the output), interleaved in one run.",
    )
    parser.add_argument("--runs", type=int, default=200, help="measured runs per side (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="discarded runs per side first (default 20)")
    common_arguments(parser, RESULTS, PROFILE)
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        server: AppProcess | None = None
        try:
            # As a user runs it: the app launches and manages its engine; the bare side uses that same engine.
            server = AppProcess(Path(tmp) / "app", engine_home=args.engine_home,
                                profile=args.profile).start()
            (engine,) = server.engines()
            key = server.create_key("bench", admin=True)
            # The shipped demo as it is (64x64, like client_overhead), its colour published as `color`.
            slug = publish(server.url, key, name="Bench invert", slug="bench-invert",
                           workflow=json.loads(WORKFLOW.read_text()),
                           inputs=[{"node": "1", "input": "color", "name": "color"}])
            progress(f"Measuring {args.runs} runs per side (+{args.warmup} warm-up), interleaved: bare engine "
                     f"{engine['url']} vs API {server.url}/api/apps/{slug}/run")
            result = asyncio.run(measure(engine["url"], server.url, key, slug, args.runs, args.warmup, server.pid,
                                         engine["pid"]))
        finally:
            if server is not None:
                server.stop()
    finish(result, args, print_table, runs=args.runs, warmup=args.warmup, image="64x64")
    return 0


if __name__ == "__main__":
    sys.exit(main())
