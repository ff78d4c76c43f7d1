"""What the Comfy API v2 costs over the bare engine: comfy-api-proxy (Comfy-Org's reference server) and Comfy
Publisher's own /api/v2, side by side with the bare engine and our typed API, on one engine, interleaved.

    python -m bench.v2_overhead [--runs 200] [--warmup 20] [--comfyui-url URL] [--engine-home DIR] [--out FILE]

The workload is the model-free demo (workflows/demo_invert.json, EmptyImage 64x64 -> ImageInvert -> SaveImage), a
fresh colour per run (never a cache hit). Each run is timed from before its submission to having its output's bytes;
every client polls every 1 ms, as the measurement in notes/ecosystem.md did:

- bare: POST /prompt, poll GET /history/{id}, GET /view;
- proxy: `comfy-api-proxy` 0.1.6 (its CLI, a subprocess with a --state-dir and a --token) in front of the same
  engine, through the v2 client below: POST /api/v2/jobs, poll GET /api/v2/jobs/{id} to a terminal state, GET each
  output's url;
- v2: Comfy Publisher's server through the same v2 client at its base URL (an admin key). By default the server
  starts and manages the bundled engine, as `python launch.py` does, and the other sides use that engine (its URL
  from GET /api/engine); with --comfyui-url every side uses the engine given, the server through its --comfyui-url;
- v2-app: the same at the app's base URL (/apps/{slug}), the app's workflow with only its published input changed.
  A v2 side whose base answers 404 on /api/v2/health is skipped with a line that says so;
- typed: our typed API: POST /api/apps/{slug}/versions/{n}/runs, poll GET /api/runs/{id}, GET the output's url.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from bench.client_overhead import DEFAULT_ENGINE_HOME, PNG_MAGIC, WORKFLOW, Prompts, Side
from bench.service import RESULTS_DIR, AppProcess, CpuWindow, busy_warning, cpu_seconds, finish, progress, publish
from runtimes.engine.manager import EngineManager, EngineSettings
from runtimes.engine.process import free_port

RESULTS = RESULTS_DIR / "v2_overhead.json"
POLL_S = 0.001  # as the ecosystem measurement polled: the poll interval is not what is compared
V2_TERMINAL = frozenset({"succeeded", "failed", "canceled", "expired"})  # the spec's JobStatus end states
RUN_FINAL = frozenset({"succeeded", "failed", "cancelled", "timed_out"})  # runtimes.contract.RunStatus's ends
TIMEOUT_S = 60.0


class Failed(RuntimeError):
    """A run that did not give an output: the benchmark stops (its figures would be wrong)."""


async def poll(read: Any, done: Any, what: str) -> dict[str, Any]:
    """Call `read()` every POLL_S until `done(answer)`; the last answer."""
    try:
        async with asyncio.timeout(TIMEOUT_S):
            while True:
                answer = await read()
                if done(answer):
                    return answer
                await asyncio.sleep(POLL_S)
    except TimeoutError:
        raise Failed(f"{what} in {TIMEOUT_S:g} s") from None


class BarePolling:
    """The bare engine's own protocol with no websocket: POST /prompt, poll /history/{id}, GET /view."""

    def __init__(self, engine_url: str) -> None:
        self.http = httpx.AsyncClient(base_url=engine_url, timeout=30.0, trust_env=False)
        self.polls = 0

    async def request(self, prompt: dict[str, Any]) -> bytes:
        prompt_id = uuid.uuid4().hex
        sent = await self.http.post("/prompt", json={"prompt": prompt, "prompt_id": prompt_id,
                                                     "client_id": prompt_id})
        if sent.status_code != 200:
            raise Failed(f"bare: POST /prompt answered {sent.status_code}: {sent.text[:300]}")

        async def read() -> dict[str, Any]:
            self.polls += 1
            return (await self.http.get(f"/history/{prompt_id}")).json()

        history = await poll(read, lambda answer: prompt_id in answer, "bare: no history")
        entry = history[prompt_id]
        if (entry.get("status") or {}).get("status_str") != "success":
            raise Failed(f"bare: the prompt failed: {json.dumps(entry.get('status'))[:300]}")
        image = entry["outputs"]["3"]["images"][0]
        view = await self.http.get("/view", params={"filename": image["filename"], "subfolder": image["subfolder"],
                                                    "type": image["type"]})
        view.raise_for_status()
        return view.content

    async def aclose(self) -> None:
        await self.http.aclose()


class V2Client:
    """The Comfy API v2 as a client speaks it, the same code for every base URL: submit with a fresh
    Idempotency-Key (as comfy-sdk does), poll the job to a terminal state, follow each output's url."""

    def __init__(self, name: str, base_url: str, token: str) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        # One keep-alive connection, as a client library holds one: connection set-up is nobody's overhead.
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=30.0, trust_env=False, follow_redirects=True,
                                      headers={"Authorization": f"Bearer {token}"})
        self.last_job: dict[str, Any] = {}
        self.early_expired = 0  # polls that said "expired" seconds after submission (see _ended)
        self.polls = 0

    def _ended(self, job: dict[str, Any]) -> bool:
        # "expired" means past retention (hours): seconds after submission it is comfy-api-proxy 0.1.6 reading
        # /history, then /queue, while the job moves from one to the other (it answers "unknown" -> "expired").
        # Counted, and polled on: GET is the truth, and the next read says how the job ended.
        if job.get("status") == "expired":
            self.early_expired += 1
            return False
        return job.get("status") in V2_TERMINAL

    def _link(self, link: str) -> str:
        """A link from a response, absolute: the contract's host-relative links already carry the surface's mount
        prefix, so they resolve against the origin, never against the base URL (that would repeat the prefix)."""
        return urljoin(self.base_url + "/", link)

    async def served(self) -> str | None:
        """None when the base URL serves the v2 API; else why this side is skipped (a 404 on /api/v2/health)."""
        answer = await self.http.get("/api/v2/health")
        if answer.status_code == 404:
            return f"{self.base_url}/api/v2/health answers 404: this server does not serve the Comfy API v2 here yet"
        if answer.status_code != 200:
            raise Failed(f"{self.name}: /api/v2/health answered {answer.status_code}: {answer.text[:300]}")
        return None

    async def request(self, workflow: dict[str, Any]) -> bytes:
        created = await self.http.post("/api/v2/jobs", json={"workflow": workflow},
                                       headers={"Idempotency-Key": uuid.uuid4().hex})
        if created.status_code not in (200, 201, 202):
            raise Failed(f"{self.name}: POST /api/v2/jobs answered {created.status_code}: {created.text[:300]}")
        job = created.json()
        url = self._link((job.get("urls") or {}).get("self") or f"{self.base_url}/api/v2/jobs/{job['id']}")

        async def read() -> dict[str, Any]:
            self.polls += 1
            answer = await self.http.get(url)
            answer.raise_for_status()
            return answer.json()

        if job.get("status") not in V2_TERMINAL:
            job = await poll(read, self._ended, f"{self.name}: job never ended")
        if job["status"] != "succeeded" or not job.get("outputs"):
            raise Failed(f"{self.name}: job {job['id']} ended {job['status']}: {json.dumps(job.get('error'))[:300]}")
        self.last_job = job
        contents = []
        for output in job["outputs"]:
            fetched = await self.http.get(self._link(output["url"]))
            fetched.raise_for_status()
            contents.append(fetched.content)
        return contents[0]

    async def aclose(self) -> None:
        await self.http.aclose()


class TypedClient:
    """Our typed API: queue a run of the pinned version, poll the run, GET its output."""

    def __init__(self, base_url: str, key: str, slug: str, version: int) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30.0, trust_env=False,
                                      headers={"Authorization": f"Bearer {key}"})
        self.path = f"/api/apps/{slug}/versions/{version}/runs"
        self.polls = 0

    async def request(self, prompt: dict[str, Any]) -> bytes:
        color = prompt["1"]["inputs"]["color"]  # the same work on the engine as the other sides
        queued = await self.http.post(self.path, json={"inputs": {"color": color}})
        if queued.status_code not in (200, 202):
            raise Failed(f"typed: POST {self.path} answered {queued.status_code}: {queued.text[:300]}")
        run = queued.json()

        async def read() -> dict[str, Any]:
            self.polls += 1
            answer = await self.http.get(run["urls"]["self"])
            answer.raise_for_status()
            return answer.json()

        if run["status"] not in RUN_FINAL:
            run = await poll(read, lambda r: r["status"] in RUN_FINAL, "typed: run never ended")
        if run["status"] != "succeeded":
            raise Failed(f"typed: run {run['id']} ended {run['status']}: {json.dumps(run.get('error'))[:300]}")
        output = await self.http.get(run["outputs"][0]["url"])
        output.raise_for_status()
        return output.content

    async def aclose(self) -> None:
        await self.http.aclose()


def app_workflow_request(client: V2Client, published: Mapping[str, Any]) -> Any:
    """A v2 request at an app's base URL: its published workflow, only the colour (its input) changed."""
    async def request(prompt: dict[str, Any]) -> bytes:
        workflow = copy.deepcopy(dict(published))
        workflow["1"]["inputs"]["color"] = prompt["1"]["inputs"]["color"]
        return await client.request(workflow)

    return request


class ProxyProcess:
    """comfy-api-proxy's own CLI in front of one engine, on a free port, its state in `state_dir`."""

    def __init__(self, engine_url: str, state_dir: Path, token: str) -> None:
        self.port = free_port()
        self.state_dir = state_dir
        self.log = state_dir.parent / "proxy.log"
        script = Path(sys.executable).with_name("comfy-api-proxy")
        command = [str(script)] if script.exists() else [shutil.which("comfy-api-proxy") or "comfy-api-proxy"]
        self.args = [*command, "run", "--comfyui", engine_url, "--host", "127.0.0.1", "--port", str(self.port),
                     "--state-dir", str(state_dir), "--token", token]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ProxyProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"comfy-api-proxy exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/api/v2/health", timeout=1, trust_env=False).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"comfy-api-proxy did not answer in {timeout} s:\n{self.log_tail()}")

    def jobs_recorded(self) -> int:
        """How many jobs the proxy recorded in its state: proof the proxy side went through it."""
        with sqlite3.connect(self.state_dir / "state.sqlite3") as db:
            (count,) = db.execute("SELECT count(*) FROM jobs").fetchone()
        return int(count)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def order_of(sides: list[Measured], round_no: int) -> list[Measured]:
    """The round's order: rotated each round, so each side takes each place equally (drift hits all alike)."""
    shift = round_no % len(sides)
    return sides[shift:] + sides[:shift]


@dataclass
class Measured(Side):
    """A side with what its requests cost besides time: the polls they made, the CPU of the server answering."""

    client: Any = None  # the client object (its `polls` counter)
    server_pid: int | None = None  # the process between this client and the engine (None: bare)
    polls: int = 0
    server_cpu_s: float = 0.0

    def summary(self) -> dict[str, float]:
        runs = len(self.latencies_ms)
        return {**super().summary(), "polls_per_run": self.polls / runs,
                **({"server_cpu_ms_per_run": self.server_cpu_s * 1000 / runs} if self.server_pid else {})}


async def timed(side: Measured, prompt: dict[str, Any], record: bool) -> None:
    polls, cpu = side.client.polls, cpu_seconds(side.server_pid) if side.server_pid else 0.0
    started = time.perf_counter()
    data = await side.request(prompt)
    elapsed = time.perf_counter() - started
    if not data.startswith(PNG_MAGIC):
        raise Failed(f"{side.name}: the output is not a PNG ({data[:16]!r})")
    if record:
        side.latencies_ms.append(elapsed * 1000)
        side.busy_s += elapsed
        side.polls += side.client.polls - polls
        if side.server_pid:  # /proc counts in clock ticks (10 ms): exact over many runs, not per run
            side.server_cpu_s += cpu_seconds(side.server_pid) - cpu


async def measure(engine_url: str, proxy_url: str, app_url: str, token: str, key: str, slug: str, runs: int,
                  warmup: int, pids: Mapping[str, int]) -> dict[str, Any]:
    prompts = Prompts(WORKFLOW)
    bare = BarePolling(engine_url)
    proxy = V2Client("proxy", proxy_url, token)
    ours = V2Client("v2", app_url, key)
    app_v2 = V2Client("v2-app", f"{app_url}/apps/{slug}", key)
    app_info = httpx.get(f"{app_url}/api/apps/{slug}", headers={"Authorization": f"Bearer {key}"},
                         trust_env=False, timeout=10).json()
    typed = TypedClient(app_url, key, slug, int(app_info["version"]))
    # The workflow a client of the app starts from: what GET /api/apps/{slug} gives, else the one published.
    published = (app_info.get("latest") or {}).get("workflow") or json.loads(WORKFLOW.read_text())
    skipped: dict[str, str] = {}
    try:
        server_pid = pids["server"]
        sides = [Measured("bare", bare.request, client=bare),
                 Measured("proxy", proxy.request, client=proxy, server_pid=pids["proxy"])]
        for client, request in ((ours, ours.request), (app_v2, app_workflow_request(app_v2, published))):
            reason = await client.served()
            if reason is None:
                sides.append(Measured(client.name, request, client=client, server_pid=server_pid))
            else:
                skipped[client.name] = reason
                progress(f"skipping {client.name}: {reason}")
        sides.append(Measured("typed", typed.request, client=typed, server_pid=server_pid))
        for side in sides:  # warm-up: connections, the engine's first-run costs, the servers' caches
            for _ in range(warmup):
                await timed(side, prompts.next(), record=False)
        window = CpuWindow(pids)
        with window:
            for round_no in range(runs):
                for side in order_of(sides, round_no):
                    await timed(side, prompts.next(), record=True)
        last_jobs = {c.name: c.last_job for c in (proxy, ours, app_v2) if c.last_job}
        early_expired = {c.name: c.early_expired for c in (proxy, ours, app_v2) if c.name not in skipped}
    finally:
        for client in (bare, proxy, ours, app_v2, typed):
            await client.aclose()
    summaries = {side.name: side.summary() for side in sides}
    base = summaries["bare"]
    versus = {name: {"ratio_p50": s["p50_ms"] / base["p50_ms"], "ratio_p95": s["p95_ms"] / base["p95_ms"],
                     "ratio_mean": s["mean_ms"] / base["mean_ms"], "added_p50_ms": s["p50_ms"] - base["p50_ms"],
                     "added_p95_ms": s["p95_ms"] - base["p95_ms"], "added_mean_ms": s["mean_ms"] - base["mean_ms"]}
              for name, s in summaries.items() if name != "bare"}
    return {"sides": summaries, "vs_bare": versus, "skipped": skipped, "cpu": window.summary(),
            "last_jobs": last_jobs, "early_expired_polls": early_expired}


def print_table(result: dict[str, Any]) -> None:
    print(f"{'side':<8}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}{'mean ms':>10}{'x p50':>8}{'+p50 ms':>9}{'+mean ms':>10}"
          f"{'polls/run':>11}{'server CPU ms/run':>19}")
    for name, s in result["sides"].items():
        v = result["vs_bare"].get(name)
        extra = (f"{v['ratio_p50']:>8.2f}{v['added_p50_ms']:>+9.2f}{v['added_mean_ms']:>+10.2f}" if v
                 else f"{'':>8}{'':>9}{'':>10}")
        cpu = f"{s['server_cpu_ms_per_run']:>19.2f}" if "server_cpu_ms_per_run" in s else f"{'':>19}"
        print(f"{name:<8}{s['n']:>6}{s['p50_ms']:>10.2f}{s['p95_ms']:>10.2f}{s['mean_ms']:>10.2f}{extra}"
              f"{s['polls_per_run']:>11.1f}{cpu}")
    for name, reason in result["skipped"].items():
        print(f"{name:<8} skipped: {reason}")
    versus = result["vs_bare"]
    if "v2" in versus:
        ours, theirs = versus["v2"]["added_p50_ms"], versus["proxy"]["added_p50_ms"]
        print(f"our v2 adds {ours:+.2f} ms p50 over bare, the proxy {theirs:+.2f} ms: "
              f"{'no more than' if ours <= theirs else 'more than'} the proxy")
    print(f"proxy jobs recorded in its state: {result['proxy']['jobs_recorded']}")
    early = {name: count for name, count in result["early_expired_polls"].items() if count}
    if early:
        print("polls answered \"expired\" seconds after submission (then polled on): "
              + ", ".join(f"{name} {count}" for name, count in early.items()))
    c = result["cpu"]
    print("cores used while measuring: " + ", ".join(f"{k.removesuffix('_cores')} {v:.2f}" for k, v in c.items()))
    warning = busy_warning(c["other_cores"])
    if warning:
        print(warning)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.v2_overhead",
        description="Latency of one run of the model-free demo, interleaved: the bare engine, comfy-api-proxy's "
                    "Comfy API v2, our /api/v2 (server-wide and an app's base URL) and our typed API.")
    parser.add_argument("--runs", type=int, default=200, help="measured rounds, one run per side each (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="discarded runs per side first (default 20)")
    parser.add_argument("--comfyui-url", help="an engine already running, for every side (default: the app starts the "
                                              "bundled one, as `python launch.py` does, and every side uses it)")
    parser.add_argument("--engine-home", type=Path, default=DEFAULT_ENGINE_HOME,
                        help=f"where the bundled engine is installed (default {DEFAULT_ENGINE_HOME})")
    parser.add_argument("--out", "--output", dest="output", type=Path, default=RESULTS,
                        help=f"JSON results file (default {RESULTS})")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    token = uuid.uuid4().hex  # the proxy checks a bearer token; our server checks its own keys
    with tempfile.TemporaryDirectory(prefix="bench-v2-") as tmp:
        manager = EngineManager(EngineSettings(data_dir=Path(tmp) / "engine", engine_home=args.engine_home,
                                               comfyui_url=args.comfyui_url, disable_api_nodes=True),
                                progress=progress)
        server: AppProcess | None = None
        proxy: ProxyProcess | None = None
        try:
            if args.comfyui_url:
                (engine, *_) = manager.start()
                engine_url, engine_pid = engine.url, engine.process.pid if engine.process else None
                server = AppProcess(Path(tmp) / "app", comfyui_url=engine_url).start()
            else:  # the app's own engine, as `python launch.py` runs it
                server = AppProcess(Path(tmp) / "app", engine_home=args.engine_home).start()
                (own,) = server.engines()
                engine_url, engine_pid = own["url"], own["pid"]
            key = server.create_key("bench", admin=True)
            proxy = ProxyProcess(engine_url, Path(tmp) / "proxy" / "state", token).start()
            slug = publish(server.url, key, name="Bench v2", slug="bench-v2", workflow=json.loads(WORKFLOW.read_text()),
                           inputs=[{"node": "1", "input": "color", "name": "color"}])
            progress(f"Measuring {args.runs} rounds (+{args.warmup} warm-up runs per side), interleaved, polling "
                     f"every {POLL_S * 1000:g} ms: engine {engine_url}, proxy {proxy.url}, app {server.url}")
            pids = {"server": server.pid, "proxy": proxy.process.pid if proxy.process else 0,
                    **({"engine": engine_pid} if engine_pid else {})}
            result = asyncio.run(measure(engine_url, proxy.url, server.url, token, key, slug, args.runs,
                                         args.warmup, pids))
            result["proxy"] = {"jobs_recorded": proxy.jobs_recorded(), "version": _version("comfy-api-proxy")}
        except BaseException:
            if server is not None:
                progress(f"--- last lines of the app's log:\n{server.log_tail()}")
            if proxy is not None:
                progress(f"--- last lines of the proxy's log:\n{proxy.log_tail()}")
            raise
        finally:
            if server is not None:
                server.stop()
            if proxy is not None:
                proxy.stop()
            manager.stop()
    finish(result, args, print_table, runs=args.runs, warmup=args.warmup, image="64x64", poll_ms=POLL_S * 1000,
           external_engine=bool(args.comfyui_url))
    return 0


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
