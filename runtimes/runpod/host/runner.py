"""Runs of apps whose runtime is a RunPod serverless endpoint: sent to the endpoint's job API (POST /run), followed
(GET /status/{id}) until they end, and reported through the same updates as the local pool's, so run records,
status, events, webhooks and outputs stay as they are. `RunPodRuns.runner(target)` is the `Runner` of one
endpoint; all of them share one HTTP client and one update callback.

A job is IN_QUEUE (waiting for a worker), then IN_PROGRESS ("started"; the handler's progress shows under
"output" meanwhile), then COMPLETED, FAILED, CANCELLED or TIMED_OUT. The handler's output is the contract's
(runtimes/runpod/container/handler.py): images and files, base64 or presigned "s3_url" links, each with its
"index" among the run's outputs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import mimetypes
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from runtimes.contract import CancelOutcome, ErrorRecord, RunOutcome, RunRequest, RunUpdate, UpdateCallback, run_error
from runtimes.serverless.remote_runner import RemoteRunner
from runtimes.serverless.wire import inputs_of, outcome_from_result

log = logging.getLogger(__name__)

POLL_S = 0.5
MAX_POLL_FAILURES = 20  # consecutive failed polls (about 10 s + timeouts) before the run is failed
MAX_SUBMIT_TRIES = 3  # a /run answered 429 (rate limited) is sent again after Retry-After
RUNNING_STATES = frozenset({"IN_PROGRESS", "RUNNING"})
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})
KEY_REFUSED = ("RunPod refused RUNPOD_API_KEY: create a key at runpod.io console → Settings → API Keys with "
               "read/write on Serverless, set it as RUNPOD_API_KEY in the environment of the app, and restart it")


@dataclass(frozen=True)
class RunPodTarget:
    name: str  # shown as the run's worker, e.g. "runpod:comfy-publisher-demo"
    url: str  # the endpoint's job API: {RUNPOD_ENDPOINT_BASE_URL}/{endpoint_id} (api.job_url)
    key: str = field(repr=False)


class _Ended(Exception):  # not an error: the run ended before it had a result; `update` says how
    def __init__(self, update: RunUpdate) -> None:
        super().__init__(update.kind)
        self.update = update


class RunPodRuns:
    def __init__(self, *, on_update: UpdateCallback, poll_s: float = POLL_S) -> None:
        self._on_update = on_update
        self.poll_s = poll_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._jobs: dict[str, tuple[RunPodTarget, str]] = {}  # run id -> (target, RunPod job id)
        self._targets: dict[str, RunPodTarget] = {}
        self._cancelled: set[str] = set()
        self._started: set[str] = set()
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(60, connect=10), trust_env=True)

    def runner(self, target: RunPodTarget) -> RemoteRunner[RunPodTarget]:
        return RemoteRunner(self, target)

    def submit(self, request: RunRequest, target: RunPodTarget) -> None:
        self._targets[request.run_id] = target
        self._tasks[request.run_id] = asyncio.create_task(self._run(request, target), name=f"runpod-{request.run_id}")

    def running(self) -> dict[str, str]:
        return {run_id: self._targets[run_id].name for run_id in self._tasks if run_id in self._targets}

    async def cancel(self, run_id: str) -> CancelOutcome:
        if run_id not in self._tasks:
            return "not_found"
        self._cancelled.add(run_id)
        job = self._jobs.get(run_id)
        if job is not None:  # else /run has not answered yet: the job is cancelled as soon as it has an id
            await self._cancel_job(*job)
        return "interrupted"

    async def aclose(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks.values(), timeout=5)
        await self._http.aclose()

    async def _run(self, request: RunRequest, target: RunPodTarget) -> None:
        run_id = request.run_id
        try:
            try:
                update = await self._final(run_id, target, await self._follow(request, target))
            except _Ended as ended:
                update = ended.update
            except Exception as exc:
                said = _without_key(str(exc), target)
                log.warning("RunPod run %s on %s failed: %s", run_id, target.url, said)
                update = RunUpdate(run_id, "failed", worker=target.name, error=run_error(
                    "remote_error", f"The RunPod endpoint at {target.url} could not run this: "
                                    f"{type(exc).__name__}: {said}"))
            if run_id in self._cancelled and update.kind != "succeeded":  # whatever else it met on the way out
                update = RunUpdate(run_id, "cancelled", worker=target.name)
            if update.kind != "cancelled" and run_id in self._jobs and run_id not in self._started:
                await self._start(run_id, target)  # a job can go from IN_QUEUE to its end between two polls
            await self._emit(update)
        finally:
            self._tasks.pop(run_id, None)
            self._jobs.pop(run_id, None)
            self._targets.pop(run_id, None)
            self._cancelled.discard(run_id)
            self._started.discard(run_id)

    async def _follow(self, request: RunRequest, target: RunPodTarget) -> dict[str, Any]:
        """Submit the run, then poll it: the final /status body."""
        run_id = request.run_id
        body = {"input": {"inputs": await inputs_of(request), "run_id": run_id}}
        for attempt in range(1, MAX_SUBMIT_TRIES + 1):
            response = await self._http.post(f"{target.url}/run", headers=_auth(target), json=body)
            if response.status_code != 429 or attempt == MAX_SUBMIT_TRIES:
                break
            await asyncio.sleep(_retry_after(response))
        self._refused(response, run_id, target)
        if response.status_code == 404:
            self._fail(run_id, target, f"RunPod has no endpoint at {target.url} (deleted in the RunPod console?): "
                                       "deploy the app again.")
        if response.status_code == 429:
            self._fail(run_id, target, "RunPod is rate limiting this endpoint's submissions: try again shortly.")
        if not response.is_success:
            too_big = " A run's inputs may be at most 10 MB in all." if response.status_code in (400, 413) else ""
            self._fail(run_id, target, f"RunPod refused the run ({response.status_code}: "
                                       f"{_said(response)[:500]}).{too_big}", status=response.status_code)
        job_id = response.json()["id"]
        self._jobs[run_id] = (target, job_id)
        if run_id in self._cancelled:  # cancelled while /run was being sent
            await self._cancel_job(target, job_id)
        failures, progress = 0, None
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                polled = await self._http.get(f"{target.url}/status/{job_id}", headers=_auth(target))
            except httpx.HTTPError as exc:
                polled, error = None, f"{type(exc).__name__}: {exc}"
            else:
                self._refused(polled, run_id, target)
                if polled.status_code == 404:
                    self._fail(run_id, target, f"RunPod no longer knows job {job_id}: its time to live ran out "
                                               "(jobs that wait in the queue too long are dropped, results are kept "
                                               "30 minutes). Try the run again.")
                error = None if polled.is_success else f"status {polled.status_code}"
            if error is not None:  # a network blip, a 5xx or a 429: try again, up to a limit
                failures += 1
                if failures >= MAX_POLL_FAILURES:
                    raise RuntimeError(f"lost contact with RunPod while following job {job_id} ({error})")
                continue
            failures = 0
            assert polled is not None
            status = polled.json()
            state = status.get("status")
            if state in FINAL_STATES:
                return status
            if state in RUNNING_STATES:
                if run_id not in self._started:
                    await self._start(run_id, target)
                output = status.get("output")
                now = output.get("progress") if isinstance(output, dict) else None
                if isinstance(now, dict) and now != progress:
                    progress = now
                    await self._emit(RunUpdate(run_id, "progress", worker=target.name, progress=now))

    async def _final(self, run_id: str, target: RunPodTarget, status: dict[str, Any]) -> RunUpdate:
        state = status["status"]
        output = status.get("output")
        if state == "COMPLETED":  # its own end stands, even when a cancel came too late
            if not isinstance(output, dict):
                raise RuntimeError(f"the worker's output is not the app's handler's (got {type(output).__name__}); "
                                   "is the endpoint running this app's image?")
            return RunUpdate(run_id, "succeeded", worker=target.name, outcome=await self._outcome(run_id, output))
        if state == "CANCELLED":
            return RunUpdate(run_id, "cancelled", worker=target.name, error=None if run_id in self._cancelled else
                             run_error("cancelled", "The job was cancelled on RunPod (in its console or its API)."))
        if state == "TIMED_OUT":
            return RunUpdate(run_id, "timed_out", worker=target.name, error=run_error(
                "timeout", "RunPod stopped the job: it ran past the endpoint's execution timeout, or waited in the "
                           "queue past its time to live. Raise the execution timeout in the deploy settings (or "
                           "the maximum of workers) and deploy again.", details={"job_id": status.get("id")}))
        error = _failure(status)
        kind = "timed_out" if isinstance(output, dict) and output.get("status") == "timed_out" else "failed"
        return RunUpdate(run_id, kind, worker=target.name, error=error)

    async def _outcome(self, run_id: str, output: dict[str, Any]) -> RunOutcome:
        items = sorted([*(output.get("images") or []), *(output.get("files") or [])],
                       key=lambda item: item.get("index", 0))
        datas = [await self._data(item) for item in items]
        result = {"run_id": run_id, "applied": output.get("applied") or {}, "exec_ms": output.get("exec_ms"),
                  "outputs": [{"node_id": str(item.get("node_id", "")), "filename": item["filename"],
                               "kind": item.get("kind", "image"), "mime": item.get("mime") or _mime(item["filename"])}
                              for item in items]}
        return outcome_from_result(result, datas)

    async def _data(self, item: dict[str, Any]) -> bytes:
        if item.get("type") == "s3_url":
            where = urlsplit(item["data"])
            # A presigned URL carries its own signature: no RunPod key with it (S3 refuses two auth mechanisms).
            response = await self._http.get(item["data"])
            if not response.is_success:
                raise RuntimeError(f"could not fetch the output {item['filename']} from "
                                   f"{where.scheme}://{where.netloc}{where.path} ({response.status_code}); "
                                   "presigned links expire after 7 days")
            return response.content
        try:
            return base64.b64decode(item["data"], validate=True)
        except (binascii.Error, ValueError, TypeError) as exc:
            raise RuntimeError(f"the output {item.get('filename')} is not valid base64 ({exc})") from None

    def _refused(self, response: httpx.Response, run_id: str, target: RunPodTarget) -> None:
        if response.status_code in (401, 403):
            self._fail(run_id, target, f"{KEY_REFUSED} ({response.status_code}).", status=response.status_code)

    def _fail(self, run_id: str, target: RunPodTarget, message: str, *, status: int | None = None) -> None:
        raise _Ended(RunUpdate(run_id, "failed", worker=target.name, error=run_error(
            "remote_error", message, details={"status": status} if status else None)))

    async def _start(self, run_id: str, target: RunPodTarget) -> None:
        self._started.add(run_id)
        await self._emit(RunUpdate(run_id, "started", worker=target.name))

    async def _cancel_job(self, target: RunPodTarget, job_id: str) -> None:
        with contextlib.suppress(httpx.HTTPError):  # the poll still sees how it ended
            await self._http.post(f"{target.url}/cancel/{job_id}", headers=_auth(target))

    async def _emit(self, update: RunUpdate) -> None:
        try:
            await self._on_update(update)
        except Exception:
            log.exception("on_update failed for RunPod run %s (%s)", update.run_id, update.kind)


def _failure(status: dict[str, Any]) -> ErrorRecord:
    """The error record of a FAILED job: the handler's own record when the output kept it, else what the SDK made of
    the handler's "error" (a string, or the JSON of a raised exception)."""
    output = status.get("output")
    if isinstance(output, dict) and isinstance(output.get("run_error"), dict):
        return output["run_error"]
    error = status.get("error")
    if not error:
        return run_error("remote_error", "RunPod reports the job FAILED without a reason: see the endpoint's "
                                         "worker logs in the RunPod console.")
    try:
        raised = json.loads(error)
    except (TypeError, ValueError):
        raised = None
    if isinstance(raised, dict) and "error_message" in raised:
        return run_error("remote_error", f"The RunPod worker failed: {raised['error_message']}",
                         details={key: raised.get(key) for key in ("error_type", "error_traceback", "worker_id")})
    return run_error("remote_error", str(error))


def _mime(filename: str) -> str:  # worker-comfyui's images carry no mime
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def _auth(target: RunPodTarget) -> dict[str, str]:
    return {"Authorization": f"Bearer {target.key}"}


def _without_key(text: str, target: RunPodTarget) -> str:
    return text.replace(target.key, "***") if target.key else text


def _said(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()
    if isinstance(body, dict):
        return str(body.get("error") or body.get("detail") or body.get("message") or body)
    return str(body)


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(30.0, max(0.0, float(response.headers.get("Retry-After", "1"))))
    except ValueError:
        return 1.0

