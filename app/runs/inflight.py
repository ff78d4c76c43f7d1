"""The runs this process has accepted and not seen end: which runner holds each, when it was created, its latest
progress, and the waiters woken by its end."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.runs.views import RunOut
from runtimes.contract import Runner


@dataclass
class InFlight:
    created_at: datetime  # known here, so recording the run's start and end need not read it back
    runner: Runner
    # Latest {node, value, max}: kept here, not written to the database at every step (status reads take it
    # from here while the run is in flight; it means nothing once the run has ended or the app restarted).
    progress: dict[str, Any] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    final: RunOut | None = None  # the run as its end was recorded


class InFlightRuns:
    """Read from worker threads too (status queries): plain dict reads, each atomic under the GIL."""

    def __init__(self) -> None:
        self._runs: dict[str, InFlight] = {}

    def add(self, run_id: str, created_at: datetime, runner: Runner) -> None:
        self._runs[run_id] = InFlight(created_at, runner)

    def get(self, run_id: str) -> InFlight | None:
        return self._runs.get(run_id)

    def __contains__(self, run_id: str) -> bool:
        return run_id in self._runs

    def ended(self, run_id: str, final: RunOut) -> None:
        """The run's end is recorded: wake its waiters, forget it."""
        run = self._runs.pop(run_id, None)
        if run is not None:
            run.final = final
            run.done.set()

    async def wait(self, run_id: str, timeout: float) -> RunOut | None:
        """Wait up to `timeout` seconds for the run to end; the run as its end was recorded, or None: still going,
        or not in flight here (already ended, or unknown)."""
        run = self._runs.get(run_id)
        if run is None:
            return None
        try:
            await asyncio.wait_for(run.done.wait(), timeout)
        except TimeoutError:
            return None
        return run.final
