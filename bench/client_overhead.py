"""Bare engine vs this client on the model-free workflow: p50/p95 latency of submit -> completion -> output
bytes, measured in the same run so that the ratio client/bare is what we report.

    python -m bench.client_overhead [--runs 300] [--concurrency 1] [--comfyui-url URL] [--engine-home DIR]

"Bare" is the minimal correct protocol written directly against the engine (httpx + one websocket);
"client" is runtimes.comfy.client.ComfyClient. Both sides submit the same graph with the same amount of work,
interleaved, against one engine.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from runtimes.comfy.client import ComfyClient
from runtimes.engine.install import default_engine_home
from runtimes.engine.manager import EngineManager, EngineSettings

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / "workflows" / "demo_invert.json"
RESULTS = REPO / "bench" / "results" / "client_overhead.json"
PNG_MAGIC = b"\x89PNG"
SIZE = 64

DEFAULT_ENGINE_HOME = default_engine_home()

Request = Callable[[dict[str, Any]], Awaitable[bytes]]


# --- the workload ------------------------------------------------------------------------------------


class Prompts:
    """Fresh prompts: a new EmptyImage colour per request (the engine cache never serves one) and a
    subfolder per run (SaveImage lists its folder on every save, so a shared folder would slow down)."""

    def __init__(self, path: Path) -> None:
        graph = json.loads(path.read_text())
        # The bench relies on the graph's node ids; fail loudly if the workflow file changes shape.
        assert graph["1"]["class_type"] == "EmptyImage" and graph["3"]["class_type"] == "SaveImage", graph
        self._graph = graph
        self._colours = itertools.count(1)

    def next(self) -> dict[str, Any]:
        prompt = json.loads(json.dumps(self._graph))
        prompt["1"]["inputs"].update(width=SIZE, height=SIZE, color=next(self._colours) % 0x1000000)
        prompt["3"]["inputs"]["filename_prefix"] = f"bench/{uuid.uuid4().hex}/img"
        return prompt


# --- the bare side -----------------------------------------------------------------------------------


class BareEngine:
    """The minimal correct protocol: websocket first, POST /prompt with our client id, wait for
    `executing node=null`, read /history (retried: it can lag the websocket), GET /view."""

    def __init__(self, base_url: str, concurrent: bool) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = uuid.uuid4().hex
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=30.0, trust_env=False)
        self.ws: ClientConnection | None = None
        # Sequential runs read the socket inline (the cheapest possible path); concurrent ones need one
        # reader that hands each prompt its completion, since a socket cannot be read by two tasks.
        self.concurrent = concurrent
        self._done: dict[str, asyncio.Future[None]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        ws_url = "ws" + self.base_url[self.base_url.index(":"):] + f"/ws?clientId={self.client_id}"
        self.ws = await connect(ws_url, proxy=None, max_size=None)
        if self.concurrent:
            self._reader = asyncio.create_task(self._read_all())

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.ws is not None:
            await self.ws.close()
        await self.http.aclose()

    @staticmethod
    def _finished(raw: str | bytes) -> tuple[str | None, Exception | None]:
        """(prompt id, failure) when a message ends a prompt, else (None, None)."""
        if isinstance(raw, bytes):  # previews
            return None, None
        message = json.loads(raw)
        data = message.get("data") or {}
        if message.get("type") == "executing" and data.get("node") is None:
            return data.get("prompt_id"), None
        if message.get("type") in ("execution_error", "execution_interrupted"):
            return data.get("prompt_id"), RuntimeError(f"engine reported {message['type']}: {data}")
        return None, None

    async def _read_all(self) -> None:
        assert self.ws is not None
        async for raw in self.ws:
            prompt_id, failure = self._finished(raw)
            future = self._done.get(prompt_id) if prompt_id else None
            if future is None or future.done():
                continue
            if failure is None:
                future.set_result(None)
            else:
                future.set_exception(failure)

    async def request(self, prompt: dict[str, Any]) -> bytes:
        assert self.ws is not None
        prompt_id = uuid.uuid4().hex
        if self.concurrent:
            self._done[prompt_id] = asyncio.get_running_loop().create_future()
        response = await self.http.post(
            "/prompt", json={"prompt": prompt, "client_id": self.client_id, "prompt_id": prompt_id}
        )
        response.raise_for_status()
        if self.concurrent:
            try:
                await asyncio.wait_for(self._done[prompt_id], 60)
            finally:
                del self._done[prompt_id]
        else:
            async with asyncio.timeout(60):
                while True:
                    finished, failure = self._finished(await self.ws.recv())
                    if finished == prompt_id:
                        break
            if failure is not None:
                raise failure
        entry = None
        for _ in range(1000):  # the history race: the entry can appear a moment after the websocket says done
            entry = (await self.http.get(f"/history/{prompt_id}")).json().get(prompt_id)
            if entry:
                break
            await asyncio.sleep(0.002)
        assert entry, f"no history for {prompt_id}"
        image = entry["outputs"]["3"]["images"][0]
        view = await self.http.get(
            "/view", params={"filename": image["filename"], "subfolder": image["subfolder"], "type": image["type"]}
        )
        view.raise_for_status()
        return view.content


# --- the client side ---------------------------------------------------------------------------------


def client_request(client: ComfyClient) -> Request:
    async def request(prompt: dict[str, Any]) -> bytes:
        result = await client.run(prompt)
        return await client.fetch_output(result.outputs[0])

    return request


# --- measurement ---------------------------------------------------------------------------------------


@dataclass
class Side:
    name: str
    request: Request
    latencies_ms: list[float] = field(default_factory=list)
    busy_s: float = 0.0  # wall time of this side's blocks, for throughput

    def summary(self) -> dict[str, float]:
        lat = self.latencies_ms
        return {
            "n": len(lat),
            "p50_ms": percentile(lat, 50),
            "p95_ms": percentile(lat, 95),
            "p99_ms": percentile(lat, 99),
            "mean_ms": statistics.fmean(lat),
            "min_ms": min(lat),
            "max_ms": max(lat),
            "throughput_rps": len(lat) / self.busy_s,
        }


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def run_block(side: Side, prompts: Prompts, count: int, concurrency: int, record: bool) -> None:
    """`count` requests by `concurrency` workers; each request timed from before submit to having the bytes."""
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            prompt = prompts.next()  # built outside the timed region: both sides get the same prompt cost
            started = time.perf_counter()
            data = await side.request(prompt)
            elapsed = time.perf_counter() - started
            if not data.startswith(PNG_MAGIC):
                raise RuntimeError(f"{side.name}: output is not a PNG ({data[:16]!r})")
            if record:
                side.latencies_ms.append(elapsed * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if record:
        side.busy_s += time.perf_counter() - started


async def measure(url: str, runs: int, warmup: int, concurrency: int, block: int) -> dict[str, Any]:
    prompts = Prompts(WORKFLOW)
    bare_engine = BareEngine(url, concurrent=concurrency > 1)
    client = ComfyClient(url)
    try:
        await bare_engine.open()
        bare = Side("bare", bare_engine.request)
        ours = Side("client", client_request(client))
        for side in (bare, ours):  # warm-up: connections, websocket, the engine's first-run costs
            await run_block(side, prompts, warmup, concurrency, record=False)
        # Interleave blocks and swap which side goes first each round (ABBA), so drift and any
        # "second in the pair" effect fall on both sides equally.
        done = 0
        for round_no in itertools.count():
            if done >= runs:
                break
            count = min(block, runs - done)
            order = (bare, ours) if round_no % 2 == 0 else (ours, bare)
            for side in order:
                await run_block(side, prompts, count, concurrency, record=True)
            done += count
        stats = await client.system_stats()
    finally:
        await bare_engine.close()
        await client.aclose()
    b, c = bare.summary(), ours.summary()
    return {
        "bare": b,
        "client": c,
        "ratio_p50": c["p50_ms"] / b["p50_ms"],
        "ratio_p95": c["p95_ms"] / b["p95_ms"],
        "added_p50_ms": c["p50_ms"] - b["p50_ms"],
        "added_p95_ms": c["p95_ms"] - b["p95_ms"],
        "ratio_throughput": c["throughput_rps"] / b["throughput_rps"],
        "engine": stats.get("system", {}),
    }


def print_table(result: dict[str, Any], concurrency: int) -> None:
    rps = concurrency > 1
    head = f"{'side':<8}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}{'mean ms':>10}" + (f"{'req/s':>10}" if rps else "")
    print(head)
    for name in ("bare", "client"):
        s = result[name]
        line = f"{name:<8}{s['n']:>6}{s['p50_ms']:>10.2f}{s['p95_ms']:>10.2f}{s['mean_ms']:>10.2f}"
        print(line + (f"{s['throughput_rps']:>10.1f}" if rps else ""))
    print(f"client/bare: p50 x{result['ratio_p50']:.3f}, p95 x{result['ratio_p95']:.3f}; "
          f"added p50 {result['added_p50_ms']:+.2f} ms, p95 {result['added_p95_ms']:+.2f} ms"
          + (f"; throughput x{result['ratio_throughput']:.3f}" if rps else ""))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.client_overhead",
        description="Latency of submit -> completion -> output bytes on the model-free workflow: "
                    "the bare engine protocol vs runtimes.comfy.client.ComfyClient, interleaved in one run.",
    )
    parser.add_argument("--runs", type=int, default=300, help="measured requests per side (default 300)")
    parser.add_argument("--warmup", type=int, default=20, help="discarded requests per side first (default 20)")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="concurrent requesters per side (default 1: sequential); >1 also reports req/s")
    parser.add_argument("--block", type=int, default=None,
                        help="requests per side before switching sides (default 1, or 8 x concurrency)")
    parser.add_argument("--comfyui-url", help="measure an already running ComfyUI instead of starting one")
    parser.add_argument("--engine-home", type=Path, default=DEFAULT_ENGINE_HOME,
                        help=f"where the bundled engine is installed (default {DEFAULT_ENGINE_HOME})")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results file (default {RESULTS})")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0 or args.concurrency < 1:
        parser.error("--runs and --concurrency must be >= 1, --warmup >= 0")
    # One request per block when sequential; with concurrency, blocks long enough to keep K requests in flight.
    args.block = args.block or (1 if args.concurrency == 1 else 8 * args.concurrency)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-engine-") as data_dir:
        manager = EngineManager(
            EngineSettings(data_dir=Path(data_dir), engine_home=args.engine_home, comfyui_url=args.comfyui_url,
                           disable_api_nodes=True),
            progress=progress,
        )
        try:
            (engine, *_) = manager.start()
            progress(f"Measuring {args.runs} runs per side (+{args.warmup} warm-up), concurrency "
                     f"{args.concurrency}, block {args.block}, against {engine.url}")
            result = asyncio.run(measure(engine.url, args.runs, args.warmup, args.concurrency, args.block))
        finally:
            manager.stop()
    result["settings"] = {
        "runs": args.runs, "warmup": args.warmup, "concurrency": args.concurrency, "block": args.block,
        "image": f"{SIZE}x{SIZE}", "external_engine": bool(args.comfyui_url),
        "python": platform.python_version(), "cpus": os.cpu_count(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    print_table(result, args.concurrency)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
