"""The runs this process has accepted and not seen end: which runner holds each, when it was created, its latest
progress, and the waiters woken by its end. Runs that ended here in the last minute stay answerable from memory
(`recent`): the poll that sees a job end and the download of its outputs that follows need no database trip."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.runs.views import RunOut
from db.crud_runs import NewArtifact
from runtimes.contract import Runner

RECENT_S = 60.0  # an ended run is answered from memory this long
RECENT_RUNS = 512  # ...at most this many at once
RECENT_BYTES = 64 << 20  # output bytes kept for them, in all
RECENT_FILE_BYTES = 1 << 20  # a larger output is read from disk


@dataclass
class InFlight:
    created_at: datetime  # known here, so recording the run's start and end need not read it back
    runner: Runner
    # Who may read it and where, so a status poll can be answered from here without the database.
    api_key_id: int | None = None  # the key that submitted it (None: no key, or not known here)
    slug: str | None = None  # its app's
    nodes: int = 0  # in its workflow
    started_at: datetime | None = None  # of the attempt running now; None while queued
    # Latest {node, value, max}: kept here, not written to the database at every step (status reads take it
    # from here while the run is in flight; it means nothing once the run has ended or the app restarted).
    progress: dict[str, Any] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    final: RunOut | None = None  # the run as its end was recorded


@dataclass(frozen=True)
class EndedRecord:
    """A run's end as the recorder wrote it: its row, its outputs (with their asset ids) and their bytes."""

    run: Any  # the row (every column)
    artifacts: list[NewArtifact]
    data: tuple[bytes, ...]


@dataclass(frozen=True)
class Ended:
    """A run that ended here lately: its row and outputs as written, who may read it, and the bytes of its small
    outputs (None: read the file; a larger one is not kept)."""

    run: Any
    artifacts: list[NewArtifact]
    api_key_id: int | None
    slug: str | None
    nodes: int
    data: tuple[bytes | None, ...]
    at: float  # time.monotonic() of its end

    @property
    def size(self) -> int:
        return sum(len(d) for d in self.data if d is not None)


class InFlightRuns:
    """Read from worker threads too (status queries): plain dict reads, each atomic under the GIL. The recent runs
    are kept and read on the event loop only."""

    def __init__(self) -> None:
        self._runs: dict[str, InFlight] = {}
        self._recent: OrderedDict[str, Ended] = OrderedDict()  # oldest first
        self._recent_assets: dict[str, tuple[str, int]] = {}  # asset id -> (run id, output index)
        self._recent_bytes = 0

    def add(self, run_id: str, created_at: datetime, runner: Runner, *, api_key_id: int | None = None,
            slug: str | None = None, nodes: int = 0) -> None:
        self._runs[run_id] = InFlight(created_at, runner, api_key_id=api_key_id, slug=slug, nodes=nodes)

    def get(self, run_id: str) -> InFlight | None:
        return self._runs.get(run_id)

    def __contains__(self, run_id: str) -> bool:
        return run_id in self._runs

    def ended(self, run_id: str, final: RunOut, record: EndedRecord | None = None) -> None:
        """The run's end is recorded: wake its waiters, forget it (keep it in `recent` with its `record`)."""
        run = self._runs.pop(run_id, None)
        if run is not None:
            run.final = final
            run.done.set()
            if record is not None:
                self._remember(run_id, run, record)

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

    # --- runs ended lately ----------------------------------------------------------------------

    def recent(self, run_id: str) -> Ended | None:
        """The run, if it ended here within RECENT_S seconds."""
        self._expire()
        return self._recent.get(run_id)

    def recent_output(self, asset_id: str) -> tuple[Ended, int] | None:
        """The ended run with this output asset, and the output's index."""
        self._expire()
        found = self._recent_assets.get(asset_id)
        if found is None or (ended := self._recent.get(found[0])) is None:
            return None
        return ended, found[1]

    def _remember(self, run_id: str, run: InFlight, record: EndedRecord) -> None:
        data = tuple(d if len(d) <= RECENT_FILE_BYTES else None for d in record.data)
        ended = Ended(record.run, record.artifacts, run.api_key_id, run.slug, run.nodes, data, time.monotonic())
        self._recent[run_id] = ended
        self._recent_bytes += ended.size
        for index, artifact in enumerate(record.artifacts):
            if artifact.asset_id is not None:
                self._recent_assets[artifact.asset_id] = (run_id, index)
        while self._recent and (len(self._recent) > RECENT_RUNS or self._recent_bytes > RECENT_BYTES):
            self._forget_oldest()

    def _expire(self) -> None:
        horizon = time.monotonic() - RECENT_S
        while self._recent and next(iter(self._recent.values())).at < horizon:
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        _, ended = self._recent.popitem(last=False)
        self._recent_bytes -= ended.size
        for artifact in ended.artifacts:
            self._recent_assets.pop(artifact.asset_id or "", None)
