"""A run's progress as RunPod shows it: the engine's progress events (node, value/max) sent with the SDK's
`progress_update`, which the platform shows under the job's `output` while it is IN_PROGRESS.

Throttled: at most one update per `every_s`, the first only once the run has lasted that long (a fast run sends
none). Never after the result: `progress_update` posts from a thread of its own, so `settle()` waits for those
threads before the handler returns (a late update would make a finished job look IN_PROGRESS again).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from runpod.serverless import progress_update

from runtimes.comfy.events import EngineEvent, Progress

PROGRESS_EVERY_S = 1.0
SETTLE_TIMEOUT_S = 10.0
# The thread progress_update starts is named after its target ("Thread-7 (_thread_target)").
_SDK_THREAD_MARK = "(_thread_target)"


def on_platform() -> bool:
    """Progress has somewhere to go only on RunPod (the local API server never shows it)."""
    return bool(os.environ.get("RUNPOD_WEBHOOK_POST_OUTPUT"))


class ProgressReporter:
    def __init__(self, job: Mapping[str, Any], *, every_s: float = PROGRESS_EVERY_S,
                 send: Callable[[Any, Any], None] = progress_update, enabled: bool | None = None) -> None:
        self.job = job
        self.every_s = every_s
        self.send = send
        self.enabled = on_platform() if enabled is None else enabled
        self._last = time.monotonic()  # the run's start counts as a send: nothing before every_s
        self._stopped = False
        self._threads: list[threading.Thread] = []

    def on_event(self, event: EngineEvent) -> None:
        """The run's event callback (runtimes.comfy.client.EventCallback)."""
        if self._stopped or not self.enabled or not isinstance(event, Progress):
            return
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        self._last = now
        progress = {"progress": {"node": event.node, "value": event.value, "max": event.max}}
        before = set(threading.enumerate())
        self.send(self.job, progress)
        self._threads += [t for t in threading.enumerate() if t not in before and _SDK_THREAD_MARK in t.name]

    def stop(self) -> None:
        """No more updates: the run is over."""
        self._stopped = True

    async def settle(self, timeout_s: float = SETTLE_TIMEOUT_S) -> None:
        """Wait (bounded) until every update sent has been posted, so none arrives after the result."""
        self.stop()
        pending = [t for t in self._threads if t.is_alive()]
        if pending:
            await asyncio.to_thread(_join, pending, timeout_s)


def _join(threads: list[threading.Thread], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
