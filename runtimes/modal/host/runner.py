"""Runs of apps whose runtime is a Modal deployment: sent to the deployment's endpoint over HTTP (its URL, its
key), followed until they end, and reported through the same updates as the local pool's, so run records,
status, events, webhooks and outputs stay as they are. `RemoteRuns.runner(target)` is the `Runner` of one
deployment; all of them share one HTTP client and one update callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import httpx

from runtimes.contract import CancelOutcome, RunRequest, RunUpdate, UpdateCallback, run_error
from runtimes.serverless.remote_runner import RemoteRunner
from runtimes.serverless.wire import REMOTE_FINAL_STATUSES, inputs_of, outcome_from_result

log = logging.getLogger(__name__)

POLL_S = 0.5
MAX_POLL_FAILURES = 20  # consecutive failed polls (about 10 s + timeouts) before the run is failed


@dataclass(frozen=True)
class RemoteTarget:
    name: str  # shown as the run's worker, e.g. "modal:comfy-publisher-demo"
    url: str
    key: str = field(repr=False)


class RemoteRuns:
    def __init__(self, *, on_update: UpdateCallback, poll_s: float = POLL_S) -> None:
        self._on_update = on_update
        self.poll_s = poll_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._calls: dict[str, tuple[RemoteTarget, str]] = {}  # run id -> (target, call id)
        self._cancelled: set[str] = set()
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(60, connect=10), trust_env=True)

    def runner(self, target: RemoteTarget) -> RemoteRunner[RemoteTarget]:
        return RemoteRunner(self, target)

    def submit(self, request: RunRequest, target: RemoteTarget) -> None:
        self._tasks[request.run_id] = asyncio.create_task(self._run(request, target), name=f"remote-{request.run_id}")

    def running(self) -> dict[str, str]:
        return {run_id: self._calls[run_id][0].name for run_id in self._tasks if run_id in self._calls}

    async def cancel(self, run_id: str) -> CancelOutcome:
        if run_id not in self._tasks:
            return "not_found"
        self._cancelled.add(run_id)
        call = self._calls.get(run_id)
        if call is not None:
            target, call_id = call
            with contextlib.suppress(httpx.HTTPError):
                await self._http.post(f"{target.url}/api/runs/{call_id}/cancel", headers=_auth(target))
        return "interrupted"

    async def aclose(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks.values(), timeout=5)
        await self._http.aclose()

    async def _run(self, request: RunRequest, target: RemoteTarget) -> None:
        run_id = request.run_id
        try:
            await self._emit(RunUpdate(run_id, "started", worker=target.name))
            result = await self._follow(request, target)
            await self._report(run_id, target, result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("remote run %s on %s failed: %s", run_id, target.url, exc)
            await self._emit(RunUpdate(run_id, "failed", worker=target.name, error=run_error(
                "remote_error", f"The deployment at {target.url} could not run this: {type(exc).__name__}: {exc}")))
        finally:
            self._tasks.pop(run_id, None)
            self._calls.pop(run_id, None)
            self._cancelled.discard(run_id)

    async def _follow(self, request: RunRequest, target: RemoteTarget) -> dict:
        response = await self._http.post(f"{target.url}/api/runs", headers=_auth(target),
                                         json={"run_id": request.run_id, "inputs": await inputs_of(request)})
        if response.status_code == 401:
            raise RuntimeError("the deployment refused the endpoint key (redeploy to update its secret)")
        if response.status_code == 422:
            return {"status": "failed", "error": {**run_error("input_error", "The deployment refused the inputs."),
                                                  "details": response.json().get("detail")}}
        response.raise_for_status()
        call_id = response.json()["id"]
        self._calls[request.run_id] = (target, call_id)
        if request.run_id in self._cancelled:  # cancelled while it was being sent
            await self._http.post(f"{target.url}/api/runs/{call_id}/cancel", headers=_auth(target))
        failures = 0
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                polled = await self._http.get(f"{target.url}/api/runs/{call_id}", headers=_auth(target))
                polled.raise_for_status()
                failures = 0
            except httpx.HTTPError as exc:
                failures += 1
                if failures >= MAX_POLL_FAILURES:
                    raise RuntimeError(f"lost contact with the deployment ({exc})") from exc
                continue
            body = polled.json()
            if body.get("status") in REMOTE_FINAL_STATUSES:
                body["_call_id"] = call_id
                return body

    async def _report(self, run_id: str, target: RemoteTarget, result: dict) -> None:
        status = result.get("status")
        if status == "succeeded":
            call_id = result["_call_id"]
            files = [await self._fetch(target, call_id, i) for i in range(len(result.get("outputs") or []))]
            outcome = outcome_from_result({**result, "run_id": run_id}, files)
            await self._emit(RunUpdate(run_id, "succeeded", worker=target.name, outcome=outcome))
        elif status == "cancelled" or run_id in self._cancelled:
            await self._emit(RunUpdate(run_id, "cancelled", worker=target.name))
        elif status == "timed_out":
            await self._emit(RunUpdate(run_id, "timed_out", worker=target.name, error=result.get("error")))
        else:
            await self._emit(RunUpdate(run_id, "failed", worker=target.name,
                                       error=result.get("error") or run_error("remote_error", f"status {status}")))

    async def _fetch(self, target: RemoteTarget, call_id: str, index: int) -> bytes:
        response = await self._http.get(f"{target.url}/api/runs/{call_id}/outputs/{index}", headers=_auth(target))
        response.raise_for_status()
        return response.content

    async def _emit(self, update: RunUpdate) -> None:
        try:
            await self._on_update(update)
        except Exception:
            log.exception("on_update failed for remote run %s (%s)", update.run_id, update.kind)


def _auth(target: RemoteTarget) -> dict[str, str]:
    return {"Authorization": f"Bearer {target.key}"}

