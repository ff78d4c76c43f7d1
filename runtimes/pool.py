"""The local worker pool: one FIFO queue of runs, one worker per engine, one prompt per engine at a time.

The pool keeps no records of its own: it reports every change of a run through `on_update`, and the
app stores it. A run whose engine is lost mid-run (crash, restart) goes back to the front of the
queue once; the second loss fails it with the engine's last log lines.

The queue has no cap here: every run the pool is given was accepted and recorded already (the app refuses new
submissions past `--max-queue` before it records them), so no run is failed for a full queue, not even those
queued again after a restart with a smaller cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from publisher import NodeCatalog
from runtimes.comfy import events as ev
from runtimes.comfy.client import ComfyClient, EventCallback
from runtimes.comfy.errors import RunTimeoutError
from runtimes.contract import CancelOutcome, RunOutcome, RunRequest, RunUpdate, UpdateCallback
from runtimes.execute import ENGINE_LOST_ERRORS, error_record, execute_run

log = logging.getLogger(__name__)

MAX_ENGINE_LOSSES = 2  # the first loss is retried, the second fails the run
READY_POLL_S = 0.25  # how often a worker looks whether its engine is back
ENGINE_LOG_LINES = 30
STOP_WAIT_S = 40.0  # stop(): time for workers to interrupt their prompts (execute.STOP_GRACE_S + margin)


class EngineSlot(Protocol):
    """What the pool needs of an engine: where it is, whether it is up, and its log for error reports.

    runtimes.engine.manager.Engine is one (its supervisor restarts a crashed process and swaps the new
    one in only once it answers, so `is_ready()` is False in between).
    """

    name: str

    @property
    def url(self) -> str: ...

    def log_tail(self, lines: int = 30) -> str: ...

    def is_ready(self) -> bool: ...

    # Optional: `output_dir` (Path | None), the engine's output folder when it runs on this machine.


@dataclass(eq=False)
class _Entry:
    request: RunRequest
    losses: list[str] = field(default_factory=list)  # messages of the engine losses so far
    cancel_requested: bool = False

    @property
    def run_id(self) -> str:
        return self.request.run_id


@dataclass(eq=False)
class _Active:
    entry: _Entry
    worker: str
    task: asyncio.Task[RunOutcome]
    requeueing: bool = False  # telling the app it retries; it goes back to the queue right after


class _Worker:
    """A worker's connection to its engine: a client for the slot's current URL and the engine's nodes."""

    def __init__(self, slot: EngineSlot) -> None:
        self.slot = slot
        self.client: ComfyClient | None = None
        self.catalog: NodeCatalog | None = None
        self.suspect = False  # the engine was just lost: check it answers before giving it a run

    async def connect(self) -> None:
        url = self.slot.url.rstrip("/")
        if self.client is None or self.client.base_url != url:  # restarted on another port
            await self.close()
            self.client = ComfyClient(url, output_dir=getattr(self.slot, "output_dir", None))
        if self.catalog is None:
            self.catalog = NodeCatalog.from_object_info(await self.client.object_info(refresh=True))
        elif self.suspect:
            await self.client.system_stats()
        self.suspect = False

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
        self.client, self.catalog = None, None


class WorkerPool:
    """The local runtime (a `runtimes.contract.Runner`). Call it from the event loop it runs in (submit and
    cancel are cheap); only `position`, `queued_count` and `running` may also be read from other threads (status
    queries answered in worker threads)."""

    def __init__(self, *, on_update: UpdateCallback) -> None:
        self._on_update = on_update
        self._queue: deque[_Entry] = deque()
        # Positions without a scan per status query: absolute index at the last rebuild, minus the runs
        # taken from the front since. Appends keep it valid; front inserts and removals rebuild it.
        self._positions: dict[str, int] | None = None
        self._taken = 0
        self._order = threading.Lock()  # the queue's order vs. position() from worker threads
        self._queued: dict[str, _Entry] = {}
        self._active: dict[str, _Active] = {}
        self._slots: list[EngineSlot] = []
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._available = asyncio.Event()  # set while the queue is not empty
        self._started = False
        self._ending: set[asyncio.Task[None]] = set()  # runs' end reports not yet recorded by the app

    # --- engines and lifecycle -------------------------------------------------------------------

    def add_engine(self, slot: EngineSlot) -> None:
        """Give the pool an engine; its worker starts taking runs as soon as the engine is ready."""
        if any(existing.name == slot.name for existing in self._slots):
            raise ValueError(f"an engine named {slot.name!r} is in the pool already")
        self._slots.append(slot)
        if self._started:
            self._spawn(slot)

    async def start(self) -> None:
        self._started = True
        for slot in self._slots:
            if slot.name not in self._workers:
                self._spawn(slot)

    async def stop(self) -> None:
        """Stop the workers; their running prompts are interrupted and go back to the front of the queue."""
        self._started = False
        tasks = list(self._workers.values())
        self._workers.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_WAIT_S)
        if self._ending:  # ends already reported are recorded before the app stops
            await asyncio.wait(set(self._ending), timeout=STOP_WAIT_S)

    def _spawn(self, slot: EngineSlot) -> None:
        self._workers[slot.name] = asyncio.create_task(self._work(slot), name=f"pool-worker-{slot.name}")

    # --- the queue -------------------------------------------------------------------------------

    def submit(self, request: RunRequest, *, front: bool = False, earlier_losses: Sequence[str] = ()) -> int:
        """Queue a run (never refused: the app accepted and recorded it); returns its 1-based position.

        `front=True` jumps the queue (a run cut short goes first again). `earlier_losses`: engine losses of this
        run before it came here (a previous app process), counted against MAX_ENGINE_LOSSES.
        """
        run_id = request.run_id
        if run_id in self._queued or run_id in self._active:
            raise ValueError(f"run {run_id} is already queued or running")
        self._enqueue(_Entry(request, losses=list(earlier_losses)), front=front)
        return 1 if front else len(self._queue)

    def position(self, run_id: str) -> int | None:
        """1-based position among the queued runs; None when the run is not queued."""
        with self._order:
            if run_id not in self._queued:
                return None
            if self._positions is None:
                self._positions, self._taken = self.positions(), 0
            return self._positions[run_id] - self._taken

    def positions(self) -> dict[str, int]:
        """Every queued run's position at once (one pass, for broadcasting them)."""
        return {entry.run_id: i for i, entry in enumerate(self._queue, 1)}

    def queued_count(self) -> int:
        return len(self._queue)

    def worker_count(self) -> int:
        """Workers taking runs (one per engine in the pool, once the pool has started)."""
        return len(self._workers)

    def running(self) -> dict[str, str]:
        """run_id -> name of the worker (engine) running it."""
        return {run_id: active.worker for run_id, active in self._active.items()}

    async def cancel(self, run_id: str) -> CancelOutcome:
        """Cancel a run: a queued one never reaches an engine, a running one is interrupted there.

        Both get a "cancelled" update; an interrupted run's follows once its engine has stopped it.
        'not_found' also answers for a run that is finishing right now: its own result stands.
        """
        with self._order:
            entry = self._queued.pop(run_id, None)
            if entry is not None:
                self._queue.remove(entry)
                self._positions = None
        if entry is not None:
            await self._emit(RunUpdate(run_id, "cancelled"))
            return "dequeued"
        active = self._active.get(run_id)
        if active is None:
            return "not_found"
        if active.requeueing:  # between "retrying" and the queue: it is not going to start again
            active.entry.cancel_requested = True
            return "dequeued"
        active.entry.cancel_requested = True
        if active.task.done():
            active.entry.cancel_requested = False
            return "not_found"
        active.task.cancel()  # execute_run interrupts the prompt on the engine, wherever the run is
        return "interrupted"

    def _enqueue(self, entry: _Entry, *, front: bool) -> None:
        with self._order:
            if front:
                self._queue.appendleft(entry)
                self._positions = None
            else:
                self._queue.append(entry)
                if self._positions is not None:
                    self._positions[entry.run_id] = len(self._queue) + self._taken
            self._queued[entry.run_id] = entry
        self._available.set()

    # --- workers ---------------------------------------------------------------------------------

    async def _work(self, slot: EngineSlot) -> None:
        worker = _Worker(slot)
        try:
            while True:
                await self._until_ready(worker)
                if not self._queue:
                    self._available.clear()
                    await self._available.wait()
                    continue  # the engine may have gone while we waited
                with self._order:
                    entry = self._queue.popleft()
                    self._taken += 1
                    del self._queued[entry.run_id]
                if not self._queue:
                    self._available.clear()
                try:
                    await self._run(worker, entry)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a bug must not take the worker (and its engine) out of the pool
                    log.exception("worker %s failed on run %s", slot.name, entry.run_id)
                    await self._emit(RunUpdate(entry.run_id, "failed", worker=slot.name,
                                               error=error_record(exc, entry.request)))
        finally:
            with contextlib.suppress(Exception):
                await worker.close()

    async def _until_ready(self, worker: _Worker) -> None:
        """Return once the engine is up, answers, and its node catalog is known."""
        while True:
            if worker.slot.is_ready():
                try:
                    await worker.connect()
                    return
                except Exception as exc:
                    log.debug("engine %s not answering yet: %s", worker.slot.name, exc)
            await asyncio.sleep(READY_POLL_S)

    async def _run(self, worker: _Worker, entry: _Entry) -> None:
        slot, request = worker.slot, entry.request
        run_id = request.run_id
        assert worker.client is not None and worker.catalog is not None
        # The engine starts on the run while its start is recorded: that write is off the critical path, and it
        # is over before the run's end is reported (the end waits for it below).
        task = asyncio.create_task(
            execute_run(worker.client, worker.catalog, request, on_event=self._relay(run_id, slot.name)),
            name=f"run-{run_id}",
        )
        active = self._active[run_id] = _Active(entry, slot.name, task)
        try:
            try:
                await self._emit(RunUpdate(run_id, "started", worker=slot.name))
                await asyncio.wait({task})  # not `await task`: a cancel of the run is not one of the worker
            except asyncio.CancelledError:  # the pool stops: stop the prompt, keep the run for later
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                if not entry.cancel_requested:
                    self._enqueue(entry, front=True)
                raise
            await self._finish(worker, active)
        finally:
            self._active.pop(run_id, None)

    async def _finish(self, worker: _Worker, active: _Active) -> None:
        entry, task, name = active.entry, active.task, worker.slot.name
        run_id = entry.run_id
        exc = None if task.cancelled() else task.exception()
        if not task.cancelled() and exc is None:
            self._end(RunUpdate(run_id, "succeeded", worker=name, outcome=task.result()))
            return
        if entry.cancel_requested or task.cancelled():
            # Whatever ended it after a cancel request (interrupt, timeout) was caused by the cancel.
            self._end(RunUpdate(run_id, "cancelled", worker=name))
            return
        assert exc is not None
        record = error_record(exc, entry.request)
        if isinstance(exc, RunTimeoutError):
            self._end(RunUpdate(run_id, "timed_out", worker=name, error=record))
            return
        if isinstance(exc, ENGINE_LOST_ERRORS):
            worker.suspect = True
            entry.losses.append(str(exc))
            if len(entry.losses) < MAX_ENGINE_LOSSES:
                active.requeueing = True
                # Awaited: the app records the run as queued again before any worker can start it again.
                await self._emit(RunUpdate(run_id, "retrying", worker=name, error=record))
                if entry.cancel_requested:
                    self._end(RunUpdate(run_id, "cancelled", worker=name))
                else:
                    self._enqueue(entry, front=True)
                return
            tail = worker.slot.log_tail(ENGINE_LOG_LINES)
            record["message"] = (
                f"The engine was lost {len(entry.losses)} times while running this run; giving up. "
                f"Last error: {exc}\nLast lines of the engine log ({name}):\n{tail or '(empty)'}"
            )
            record["details"] = {"losses": list(entry.losses), "log_tail": tail}
        elif record["type"] == "internal_error":
            log.error("run %s failed unexpectedly", run_id, exc_info=exc)
        self._end(RunUpdate(run_id, "failed", worker=name, error=record))

    def _end(self, update: RunUpdate) -> None:
        """Report a run's end while its worker hands the engine the next run: recording the end (outputs stored,
        the database written) is then off the engine's critical path. Nothing about this run follows its end."""
        task = asyncio.create_task(self._emit(update), name=f"end-{update.run_id}")
        self._ending.add(task)  # the event loop keeps only weak references to tasks
        task.add_done_callback(self._ending.discard)

    def _relay(self, run_id: str, worker: str) -> EventCallback:
        """Engine events of one run -> progress and preview updates."""

        async def on_event(event: ev.EngineEvent) -> None:
            if isinstance(event, ev.Progress):
                progress = {"node": event.node, "value": event.value, "max": event.max}
                await self._emit(RunUpdate(run_id, "progress", worker=worker, progress=progress))
            elif isinstance(event, ev.Preview) and event.image:
                await self._emit(RunUpdate(run_id, "preview", worker=worker, preview=(event.mime_type, event.image)))

        return on_event

    async def _emit(self, update: RunUpdate) -> None:
        try:
            await self._on_update(update)
        except Exception:  # the app's bookkeeping failing must not fail the run or the worker
            log.exception("on_update failed for run %s (%s)", update.run_id, update.kind)
