"""Run a load test: check the target, write the locustfile, run Locust headless as a subprocess (its own process
group, so a cancel leaves no orphans), sample the queue once a second, then write the report, summary and plots."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from app.loadtest.errors import LoadTestError
from app.loadtest.locustfile import EVENT_LOG_ENV, KEY_ENV, render_locustfile
from app.loadtest.options import LoadTestOptions
from app.loadtest.report import EventLog, build_report, summary_markdown
from app.loadtest.target import Target, resolve_target

__all__ = ["LoadTestError", "run_load_test"]

STOP_TIMEOUT_S = 30  # after the duration, runs under way get this long to end before Locust stops its users
TICK_S = 1.0
_KILL_GRACE_S = 5.0


async def run_load_test(options: LoadTestOptions, *, base_url: str, api_key: str, out_dir: Path,
                        on_progress: Callable[[dict[str, Any]], None] | None = None,
                        endpoint_key: str | None = None, report_id: str | None = None) -> dict[str, Any]:
    """`base_url`: this Comfy Publisher server (with target "modal" too: its records name the deployment).
    `endpoint_key`: the deployment's key, for target "modal" (the server derives it; see DeploymentService).
    `report_id`: the report's id (the studio's folder name); by default one made of the start time.
    Returns the report (as written to out_dir/report.json). Raises LoadTestError with what to fix."""
    async with httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=15, trust_env=False) as http:
        target = await resolve_target(http, slug=options.slug, target=options.target, api_key=api_key,
                                      endpoint_key=endpoint_key)
        if options.target == "modal":
            if not endpoint_key:
                raise LoadTestError("A load test of a deployment needs its endpoint key: run it from the command "
                                    "line with the server's --data-dir (`python launch.py --data-dir DIR loadtest "
                                    "SLUG --target modal ...`), or from the studio.")
            await _check_deployment_answers(target)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "locustfile.py").write_text(render_locustfile(target.app, options,
                                                                 submit_path=target.submit_path))
        log = EventLog(out_dir / "events.jsonl")
        log.path.unlink(missing_ok=True)
        report_id = report_id or f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        started_at, started = _now(), time.time()
        queue: list[tuple[float, int | None]] = []
        try:
            returncode = await _run_locust(options, target, out_dir, log, queue, http, started, on_progress)
        except asyncio.CancelledError:
            # Locust is stopped (_run_locust's finally); the runs it left queued are cancelled too, then the
            # cancel goes on. Shielded: this task is being cancelled, the cleanup must still be sent.
            log.read()
            with contextlib.suppress(Exception):
                await asyncio.shield(_cancel_unfinished(await _leftovers(log, target, http, started), target))
            raise
        finished_at, finished = _now(), time.time()
        log.read()
        if not log.ticks:
            raise LoadTestError(f"Locust did not start (exit code {returncode}):\n{_tail(out_dir / 'locust.log')}")
        cut_off = await _cancel_unfinished(await _leftovers(log, target, http, started), target)

    report = build_report(report_id=report_id, options=options.to_dict(), target=options.target, url=target.url,
                          version=target.version, started_at=started_at, finished_at=finished_at, log=log,
                          queue=queue, started=started, finished=finished, cut_off=cut_off)
    from app.loadtest.plots import write_plots  # matplotlib: only once there is something to plot

    totals = [float(e["total_s"]) for e in log.ends if e.get("ok")]
    report["plots"] = await asyncio.to_thread(write_plots, report, out_dir, totals)
    (out_dir / "summary.md").write_text(summary_markdown(report))
    (out_dir / "report.json").write_text(_json(report))
    return report


async def _run_locust(options: LoadTestOptions, target: Target, out_dir: Path, log: EventLog,
                      queue: list[tuple[float, int | None]], http: httpx.AsyncClient, started: float,
                      on_progress: Callable[[dict[str, Any]], None] | None) -> int:
    command = [sys.executable, "-m", "locust", "-f", str(out_dir / "locustfile.py"), "--headless",
               "--users", str(options.users), "--spawn-rate", str(options.spawn_rate),
               "--run-time", f"{math.ceil(options.duration_s)}s", "--stop-timeout", str(STOP_TIMEOUT_S),
               "--host", target.url, "--csv", str(out_dir / "locust"), "--csv-full-history",
               "--json-file", str(out_dir / "locust_stats"), "--only-summary",
               "--exit-code-on-error", "0"]
    env = {**os.environ, KEY_ENV: target.key, EVENT_LOG_ENV: str(log.path), "PYTHONUNBUFFERED": "1"}
    with (out_dir / "locust.log").open("wb") as output:
        # cwd: Locust reads a locust.conf or pyproject.toml it finds there; the report folder has none.
        process = await asyncio.create_subprocess_exec(*command, cwd=out_dir, env=env, stdout=output,
                                                       stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    return await asyncio.wait_for(process.wait(), TICK_S)
                log.read()
                queue.append((time.time(), await _queue_length(http, target)))
                if on_progress is not None:
                    on_progress(log.progress(started, time.time()))
        finally:
            await _stop(process)


async def _stop(process: asyncio.subprocess.Process) -> None:
    """Locust and whatever it started: SIGTERM to its group (it writes its stats and exits), then SIGKILL."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.shield(process.wait()), _KILL_GRACE_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


async def _queue_length(http: httpx.AsyncClient, target: Target) -> int | None:
    if target.queue_url is None:
        return None
    try:
        response = await http.get(target.queue_url, timeout=2)
        return int(response.json()["queued"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None  # a missed sample is a gap in the series, not a failed test


async def _leftovers(log: EventLog, target: Target, http: httpx.AsyncClient, started: float) -> list[str]:
    """Runs the test submitted that did not end for it: those the log saw queued, and, on this server, those its
    records show since the start that the log never saw (a user stopped between the POST and its answer)."""
    unfinished = log.unfinished()
    if target.queue_url is None or not target.key:  # a deployment keeps no listing; without a key, no history
        return unfinished
    seen = {str(e.get("run_id")) for e in log.ends} | set(unfinished)
    before: str | None = None
    while True:
        try:
            response = await http.get("/api/runs", params={"app": target.app["slug"], "limit": 200,
                                                           **({"before": before} if before else {})},
                                      headers={"Authorization": f"Bearer {target.key}"})
            page = response.json()
            runs, before = page["runs"], page["next_before"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return unfinished  # the listing is a cross-check: without it, the log's own count stands
        recent = [run for run in runs if _timestamp(run["created_at"]) >= started]
        unfinished += [run["id"] for run in recent if run["id"] not in seen]
        if not before or len(recent) < len(runs):
            return unfinished


def _timestamp(iso: str) -> float:
    moment = datetime.fromisoformat(iso)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


async def _cancel_unfinished(run_ids: list[str], target: Target) -> int:
    """Runs still queued or running when Locust stopped are cancelled: a load test stops by itself, its backlog too."""
    headers = {"Authorization": f"Bearer {target.key}"} if target.key else {}
    room = asyncio.Semaphore(8)  # a backlog of a few hundred is cancelled in seconds, without a burst of 200

    async def cancel(http: httpx.AsyncClient, run_id: str) -> None:
        async with room:
            with contextlib.suppress(httpx.HTTPError):
                await http.post(f"/api/runs/{run_id}/cancel", timeout=5)

    async with httpx.AsyncClient(base_url=target.url, timeout=30, trust_env=False, headers=headers) as http:
        await asyncio.gather(*(cancel(http, run_id) for run_id in run_ids))
    return len(run_ids)


async def _check_deployment_answers(target: Target) -> None:
    """The deployment answers, and takes the endpoint key, before any simulated user starts."""
    try:
        async with httpx.AsyncClient(timeout=15, trust_env=False) as http:
            response = await http.get(f"{target.url}/api/app", headers={"Authorization": f"Bearer {target.key}"})
    except httpx.HTTPError as exc:
        raise LoadTestError(f"The app's deployment at {target.url} does not answer ({type(exc).__name__}): see "
                            "its state in the studio's Deploy tab (or GET /api/apps/SLUG/deployments), and deploy "
                            "it again if it was stopped.") from None
    if response.status_code == 401:
        raise LoadTestError(f"The deployment at {target.url} refused the endpoint key: run the load test with the "
                            "--data-dir of the server that deployed it (the key is derived from its secret.key).")
    if response.status_code != 200:
        raise LoadTestError(f"The deployment at {target.url} answered HTTP {response.status_code} to GET /api/app.")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _tail(path: Path, chars: int = 2000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def _json(report: dict[str, Any]) -> str:
    import json

    return json.dumps(report, indent=2) + "\n"
