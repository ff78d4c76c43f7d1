"""The Runner of a RunPod endpoint against the loopback RunPod (tests/support/runpod_cloud.py), whose jobs run small
worker handlers through the runpod SDK's own result rules: outputs come back in order with their bytes intact
(base64 and presigned links), progress is reported, and failures, cancels, timeouts and a refused key end the run
as the local pool's would."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from runtimes.contract import FINAL_STATUSES, RunRequest, RunUpdate, run_error
from runtimes.runpod.host.runner import RunPodRuns, RunPodTarget
from runtimes.serverless.remote_runner import RemoteRunner
from tests.support.run_requests import image_of, new_run_id, png
from tests.support.runpod_cloud import KEY, Handler, RunPodCloud, progress_update

RED, BLUE = png((255, 0, 0)), png((0, 0, 255))
VIDEO = bytes(range(256)) * 40
ENGINE_ERROR = run_error("execution_error", "KSampler: expected a model", node_id="3", node_type="KSampler")


def _item(data: str, *, kind: str, index: int, filename: str, mime: str, how: str = "base64") -> dict[str, Any]:
    return {"filename": filename, "type": how, "data": data, "node_id": "9", "kind": kind, "mime": mime,
            "index": index}


def handler_for(cloud: RunPodCloud) -> Handler:
    async def handler(job: dict[str, Any]) -> dict[str, Any]:
        inputs, run_id = job["input"]["inputs"], job["input"]["run_id"]
        mode = inputs["mode"]
        if mode == "ok":
            assert base64.b64decode(inputs["photo"]) == RED  # the upload travelled intact
            for value in (1, 2):
                progress_update(job, {"progress": {"node": "3", "value": value, "max": 2}})
                await asyncio.sleep(0.15)
            video = cloud.put_object(f"{job['id']}/clip.mp4", VIDEO, "video/mp4")
            return {"status": "succeeded", "run_id": run_id, "applied": {"mode": "ok"}, "exec_ms": 12.5,
                    "images": [_item(base64.b64encode(BLUE).decode(), kind="image", index=2, filename="b.png",
                                     mime="image/png"),
                               _item(base64.b64encode(RED).decode(), kind="image", index=0, filename="a.png",
                                     mime="image/png")],
                    "files": [_item(video, kind="video", index=1, filename="clip.mp4", mime="video/mp4",
                                    how="s3_url")]}
        if mode == "error":
            return {"error": "KSampler: expected a model", "status": "failed", "run_id": run_id,
                    "run_error": ENGINE_ERROR}
        if mode == "raise":
            raise ValueError("the engine went away")
        await asyncio.sleep(30)  # "slow": until cancelled or timed out
        return {}
    return handler


@pytest.fixture(scope="module")
def cloud() -> Iterator[RunPodCloud]:
    with RunPodCloud() as served:
        served.handler = handler_for(served)
        yield served


class Updates:
    def __init__(self) -> None:
        self.all: list[RunUpdate] = []
        self._ended: dict[str, asyncio.Event] = {}

    async def __call__(self, update: RunUpdate) -> None:
        self.all.append(update)
        if update.kind in FINAL_STATUSES:
            self._event(update.run_id).set()

    def _event(self, run_id: str) -> asyncio.Event:
        return self._ended.setdefault(run_id, asyncio.Event())

    def of(self, run_id: str) -> list[RunUpdate]:
        return [u for u in self.all if u.run_id == run_id]

    async def end(self, run_id: str, timeout: float = 10) -> RunUpdate:
        await asyncio.wait_for(self._event(run_id).wait(), timeout)
        return self.of(run_id)[-1]

    async def started(self, run_id: str, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not any(u.kind == "started" for u in self.of(run_id)):
                await asyncio.sleep(0.01)


@pytest.fixture
async def runs() -> AsyncIterator[tuple[RunPodRuns, Updates]]:
    updates = Updates()
    remote = RunPodRuns(on_update=updates, poll_s=0.02)
    yield remote, updates
    await remote.aclose()


def _runner(runs: RunPodRuns, cloud: RunPodCloud, *, key: str = KEY,
            timeout_ms: int = 600_000) -> RemoteRunner[RunPodTarget]:
    return runs.runner(RunPodTarget("runpod:loopback", cloud.job_url(cloud.add_endpoint(timeout_ms=timeout_ms)), key))


def _request(mode: str, **fields: Any) -> RunRequest:
    return RunRequest(run_id=new_run_id(), workflow={}, bindings=(), values={"mode": mode}, **fields)


async def test_a_run_succeeds_with_outputs_in_order_and_progress(runs: tuple[RunPodRuns, Updates],
                                                                 cloud: RunPodCloud) -> None:
    remote, updates = runs
    request = _request("ok", uploads={"photo": ("photo.png", RED)})
    assert _runner(remote, cloud).submit(request) is None
    end = await updates.end(request.run_id)
    kinds = [u.kind for u in updates.of(request.run_id)]
    assert kinds == ["started", "progress", "progress", "succeeded"], updates.of(request.run_id)
    assert [u.progress for u in updates.of(request.run_id)[1:3]] == [
        {"node": "3", "value": 1, "max": 2}, {"node": "3", "value": 2, "max": 2}]
    assert end.worker == "runpod:loopback" and end.outcome is not None
    outcome = end.outcome
    assert outcome.run_id == request.run_id and outcome.applied == {"mode": "ok"} and outcome.exec_ms == 12.5
    assert [(o.filename, o.kind, o.mime) for o in outcome.outputs] == [
        ("a.png", "image", "image/png"), ("clip.mp4", "video", "video/mp4"), ("b.png", "image", "image/png")]
    assert [o.data for o in outcome.outputs] == [RED, VIDEO, BLUE]
    assert image_of(outcome.outputs[2].data).getpixel((0, 0)) == (0, 0, 255)
    (sent,) = [b for b in cloud.bodies("POST", "/run") if b["input"]["run_id"] == request.run_id]
    assert sent == {"input": {"inputs": {"mode": "ok", "photo": base64.b64encode(RED).decode()},
                              "run_id": request.run_id}}
    assert [r.authorized for r in cloud.requests if r.path.startswith("/bucket/")] == [True]  # no key sent to S3


async def test_a_handler_error_fails_the_run_with_its_record(runs: tuple[RunPodRuns, Updates],
                                                             cloud: RunPodCloud) -> None:
    remote, updates = runs
    runner = _runner(remote, cloud)
    request = _request("error")
    runner.submit(request)
    end = await updates.end(request.run_id)
    assert end.kind == "failed" and end.error == ENGINE_ERROR
    cloud.keep_failed_output = False  # should RunPod drop a failed job's output, its error string is kept
    try:
        request = _request("error")
        runner.submit(request)
        end = await updates.end(request.run_id)
    finally:
        cloud.keep_failed_output = True
    assert end.kind == "failed" and end.error == run_error("remote_error", "KSampler: expected a model")


async def test_a_raised_exception_fails_the_run_with_its_message(runs: tuple[RunPodRuns, Updates],
                                                                 cloud: RunPodCloud) -> None:
    remote, updates = runs
    request = _request("raise")
    _runner(remote, cloud).submit(request)
    end = await updates.end(request.run_id)
    assert end.kind == "failed" and end.error is not None
    assert end.error["message"] == "The RunPod worker failed: the engine went away"
    assert "ValueError" in end.error["details"]["error_type"]
    assert [u.kind for u in updates.of(request.run_id)] == ["started", "failed"]


async def test_cancel_stops_a_running_job(runs: tuple[RunPodRuns, Updates], cloud: RunPodCloud) -> None:
    remote, updates = runs
    runner = _runner(remote, cloud)
    request = _request("slow")
    runner.submit(request)
    await updates.started(request.run_id)
    assert runner.running() == {request.run_id: "runpod:loopback"}
    assert await runner.cancel(request.run_id) == "interrupted"
    end = await updates.end(request.run_id)
    assert end.kind == "cancelled" and end.error is None
    assert [job.status for job in cloud.jobs.values() if job.input["run_id"] == request.run_id] == ["CANCELLED"]
    assert runner.running() == {} and await runner.cancel(request.run_id) == "not_found"


async def test_cancel_before_runpod_answered_still_cancels_the_job(runs: tuple[RunPodRuns, Updates],
                                                                   cloud: RunPodCloud) -> None:
    remote, updates = runs
    runner = _runner(remote, cloud)
    request = _request("slow")
    runner.submit(request)
    assert await runner.cancel(request.run_id) == "interrupted"  # its task has not even sent /run yet
    end = await updates.end(request.run_id)
    assert end.kind == "cancelled"
    assert [job.status for job in cloud.jobs.values() if job.input["run_id"] == request.run_id] == ["CANCELLED"]


async def test_a_job_past_the_execution_timeout_times_out(runs: tuple[RunPodRuns, Updates],
                                                          cloud: RunPodCloud) -> None:
    remote, updates = runs
    request = _request("slow")
    _runner(remote, cloud, timeout_ms=300).submit(request)
    end = await updates.end(request.run_id)
    assert end.kind == "timed_out" and end.error is not None and end.error["type"] == "timeout"
    assert "execution timeout" in end.error["message"]


async def test_a_refused_key_fails_the_run_clearly(runs: tuple[RunPodRuns, Updates], cloud: RunPodCloud) -> None:
    remote, updates = runs
    wrong = "rpa_WRONG" + "Z" * 32
    request = _request("ok")
    _runner(remote, cloud, key=wrong).submit(request)
    end = await updates.end(request.run_id)
    assert [u.kind for u in updates.of(request.run_id)] == ["failed"]
    assert end.error is not None and end.error["message"].startswith("RunPod refused RUNPOD_API_KEY")
    assert wrong not in str(end.error)


async def test_an_expired_job_fails_with_a_reason(runs: tuple[RunPodRuns, Updates], cloud: RunPodCloud) -> None:
    remote, updates = runs
    request = _request("slow")
    _runner(remote, cloud).submit(request)
    await updates.started(request.run_id)
    (job_id,) = [job.id for job in cloud.jobs.values() if job.input["run_id"] == request.run_id]
    cloud.expire(job_id)
    end = await updates.end(request.run_id)
    assert end.kind == "failed" and end.error is not None and "time to live" in end.error["message"]
