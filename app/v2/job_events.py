"""A v2 job's live event stream (SSE): on connect a `status` snapshot (and the latest `progress`), then `status` on
each change (queue position moves included), `progress`, `preview`; when the job ends, each `output` and then the
terminal `status`, after which the stream ends. Fed by the run service's events (RunService.subscribe); GET
/jobs/{id} stays the truth."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from app.v2.job_view import TERMINAL, step_progress

KEEPALIVE_S = 15.0
POSITION_POLL_S = 1.0  # how often a queued job's position is looked at


def frame(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


def _status(job: dict[str, Any]) -> str:
    return frame("status", {"status": job["status"], "queue_position": job["queue_position"]})


def _ending(job: dict[str, Any]) -> list[str]:
    """The end: the complete progress of a job that succeeded, each output, then the terminal status."""
    frames = [frame("progress", job["progress"])] if job["status"] == "succeeded" and job["progress"] else []
    return frames + [frame("output", output) for output in job["outputs"]] + [_status(job)]


async def job_stream(first: dict[str, Any], queue: asyncio.Queue[dict[str, Any]], *, nodes_total: int,
                     current: Callable[[], Any], position: Callable[[], int | None],
                     disconnected: Callable[[], Any]) -> AsyncIterator[str]:
    """`current()` reads the job (awaitable); `position()` is its queue position now. Besides the run's events,
    the queue gets `canceling` when a cancel is asked for (V2Jobs.cancel)."""
    if first["status"] in TERMINAL:  # ended already: its outputs, then its status (the snapshot, and the end)
        for output in first["outputs"]:
            yield frame("output", output)
        yield _status(first)
        return
    yield _status(first)
    if first["progress"]:
        yield frame("progress", first["progress"])
    status, place, node, idle = first["status"], first["queue_position"], "", 0.0
    while not await disconnected():
        wait = POSITION_POLL_S if status == "queued" else KEEPALIVE_S
        try:
            event = await asyncio.wait_for(queue.get(), wait)
        except TimeoutError:
            idle += wait
            if status == "queued" and (now := position()) != place:
                place = now
                yield frame("status", {"status": "queued", "queue_position": place})
            if idle >= KEEPALIVE_S:
                idle = 0.0
                yield ": keep-alive\n\n"
            continue
        kind = event["event"]
        if kind == "finished":
            for text in _ending(await current()):
                yield text
            return
        if kind == "canceling" and status != "canceling":
            status = "canceling"
            yield frame("status", {"status": "canceling", "queue_position": None})
        elif kind == "started" and status != "canceling":
            status = "running"
            yield frame("status", {"status": "running", "queue_position": None})
            yield frame("progress", step_progress(None, nodes_total))
        elif kind == "retrying":
            status = "queued"
            yield frame("status", {"status": "queued", "queue_position": position()})
        elif kind == "progress":
            node = str(event.get("node") or node)
            yield frame("progress", step_progress(event, nodes_total))
        elif kind == "preview":
            yield frame("preview", {"node_id": node, "content_type": event.get("mime", "image/jpeg"),
                                    "data_base64": event.get("data", "")})
