"""A run's life on the app side: persisted before it is queued, updated as the pool reports, recovered
after a restart, outputs kept in the app's own storage, webhooks sent when it ends.

Restart policy: runs found `queued` are queued again in their order; a run found `running` (the app
died under it) is run again once, ahead of the queue; if it was already on its second attempt, it is
failed with that reason instead. The engine's cache cannot serve a re-run stale outputs: each run
writes under its own output folder.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import mimetypes
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.run_events import RunEvents
from app.schemas import RunOut
from app.settings import Settings
from app.storage import remove_file, safe_filename, write_file
from app.webhooks import DeliveryResult, WebhookSender
from db import crud_apps, crud_runs
from db.crud_apps import RunnableVersion
from db.crud_runs import NewArtifact
from db.models import App, AppVersion, Artifact, Run
from publisher import AppSpec
from runtimes.execute import RunRequest, Upload
from runtimes.modal.remote import RemoteRuns, RemoteTarget
from runtimes.pool import QueueFullError, RunUpdate, WorkerPool

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2
_CANCELLED = {"type": "cancelled", "message": "Cancelled by request."}
_PROGRESS_WRITE_INTERVAL_S = 0.5  # progress goes to streams at once, to the DB at most this often
_SPEC_CACHE_SIZE = 256
_DELIVERY_IDS = uuid.UUID("6f1d3c52-8a4e-4f57-9a8e-2b7c0d9e4a11")  # namespace of webhook delivery ids


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Submission:
    """A run to record and queue: values already checked against the version's inputs."""

    version: RunnableVersion
    values: dict[str, Any]
    uploads: dict[str, tuple[str, bytes]]
    key_scope: str  # who submitted it, for Idempotency-Key matching
    api_key_id: int | None
    idempotency_key: str | None
    webhook_url: str | None


@dataclass
class _InFlight:
    """A run this process is running: waiters wake when it ends, and get the run as its end recorded it."""

    created_at: datetime  # known here, so recording its start and end need not read it back
    done: asyncio.Event = field(default_factory=asyncio.Event)
    final: RunOut | None = None


class _Recovered(NamedTuple):
    """A run left behind by a previous process, to queue again."""

    request: RunRequest
    created_at: datetime
    target: RemoteTarget | None
    earlier_losses: tuple[str, ...]


class RunService:
    def __init__(
        self,
        *,
        settings: Settings,
        sessions: sessionmaker[Session],
        pool: WorkerPool,
        webhooks: WebhookSender,
        webhook_secret: Callable[[str], str],
        remote: RemoteRuns | None = None,
        route: Callable[[RunnableVersion], RemoteTarget | None] | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.pool = pool
        self.webhooks = webhooks
        self.webhook_secret = webhook_secret  # app slug -> its signing secret (derived, never stored)
        self.remote = remote  # runs of apps whose runtime is a Modal deployment
        self.route = route  # app version -> the deployment that serves it, or None: the local pool
        self.events = RunEvents()
        self._progress_written: dict[str, float] = {}
        self._in_flight: dict[str, _InFlight] = {}
        self._reserved = 0  # submissions between the queue check and the pool
        self._specs: dict[int, AppSpec] = {}
        # Immutable once written: an app's slug, a version's number (for describing runs without a query).
        self._slugs: dict[int, str] = {}
        self._numbers: dict[int, int] = {}

    def spec_of(self, session: Session, version_id: int) -> AppSpec:
        """Versions are immutable: each one's spec is read and parsed once, not at every submission."""
        spec = self._specs.get(version_id)
        if spec is None:
            stored = crud_apps.version_spec(session, version_id=version_id)
            if stored is None:
                raise LookupError(f"no app version with id {version_id}")
            if len(self._specs) >= _SPEC_CACHE_SIZE:
                self._specs.clear()
            spec = self._specs[version_id] = AppSpec.from_dict(stored)
        return spec

    def view(self, session: Session, run: Run | Row[Any],
             artifacts: Sequence[Artifact | NewArtifact | Row[Any]] | None = None) -> RunOut:
        """The run (an ORM object or its row) as the API shows it (GET /api/runs/{id}, webhooks, the sync answer);
        `artifacts` when known."""
        position = self.pool.position(run.id) if run.status == "queued" else None
        if artifacts is None:
            artifacts = crud_runs.artifacts_of(session, run_id=run.id)
        return RunOut.of(run, slug=self._slug(session, run.app_id), version=self._number(session, run.version_id),
                         artifacts=artifacts, queue_position=position)

    def _slug(self, session: Session, app_id: int) -> str:
        if app_id not in self._slugs:
            app = session.get(App, app_id)
            self._slugs[app_id] = app.slug if app else "?"
        return self._slugs[app_id]

    def _number(self, session: Session, version_id: int) -> int:
        if version_id not in self._numbers:
            version = session.get(AppVersion, version_id)
            self._numbers[version_id] = version.number if version else 0
        return self._numbers[version_id]

    # --- submission ---------------------------------------------------------------------------------

    async def submit(self, **fields: Any) -> tuple[Run, bool]:
        """Persist, then queue (fields: those of `Submission`). Returns (run, created); a repeated
        Idempotency-Key returns the first run."""
        _, run, created = await self.submit_prepared(lambda _session: Submission(**fields))
        return run, created

    async def submit_prepared(self, prepare: Callable[[Session], Submission]) -> tuple[Submission, Run, bool]:
        """Like `submit`, with the submission prepared by `prepare(session)` in the same thread and database
        trip that records the run (the API looks up the caller, the app and its version there, and checks the
        inputs). What `prepare` raises is raised here, nothing recorded."""
        # Reserve a place before the DB write (other submissions run meanwhile): the pool then never
        # refuses a run that is already recorded.
        if self.pool.queued_count() + self._reserved >= self.settings.max_queue:
            raise QueueFullError(f"the queue holds {self.settings.max_queue} runs", self._retry_after())
        self._reserved += 1
        try:
            submission, run, created, spec = await asyncio.to_thread(self._persist, prepare)
            if created:
                self._in_flight[run.id] = _InFlight(run.created_at)
                self._dispatch(self._request(run, spec), self._target(submission.version))
        finally:
            self._reserved -= 1
        return submission, run, created

    def _dispatch(self, request: RunRequest, target: RemoteTarget | None, earlier_losses: tuple[str, ...] = ()) -> None:
        if target is not None and self.remote is not None:
            self.remote.submit(request, target)
        else:
            self.pool.submit(request, earlier_losses=earlier_losses)

    def _persist(self, prepare: Callable[[Session], Submission]) -> tuple[Submission, Run, bool, AppSpec]:
        """(submission, run, created, the version's spec)."""
        with self.sessions() as session:
            sub = prepare(session)
            version, uploads = sub.version, sub.uploads
            # Known now: describing this version's runs later needs no lookup.
            self._slugs[version.app_id], self._numbers[version.version_id] = version.slug, version.number
            spec = self.spec_of(session, version.version_id)
            scope = f"{version.app_id}:{sub.key_scope}:{sub.idempotency_key}" if sub.idempotency_key else None
            if scope is not None:
                existing = crud_runs.find_run_by_scope(session, scope=scope)
                if existing is not None:
                    return sub, existing, False, spec
            run_id = uuid.uuid4().hex
            stored = {name: self._store_upload(run_id, name, filename, data)
                      for name, (filename, data) in uploads.items()}
            inputs = {**sub.values, **{name: {"upload": path} for name, path in stored.items()}}
            try:
                run = crud_runs.create_run(session, run_id=run_id, app_id=version.app_id, version_id=version.version_id,
                                           inputs=inputs, webhook_url=sub.webhook_url, idempotency_scope=scope,
                                           api_key_id=sub.api_key_id)
            except IntegrityError:  # the same key, submitted twice at the same moment: the first one wins
                existing = crud_runs.find_run_by_scope(session, scope=scope) if scope else None
                if existing is None:
                    raise
                return sub, existing, False, spec
            return sub, run, True, spec

    def _target(self, version: RunnableVersion | None) -> RemoteTarget | None:
        return self.route(version) if self.route and version else None

    def _retry_after(self) -> float:
        return max(1.0, min(60.0, self.pool.queued_count() / 50))

    def _store_upload(self, run_id: str, name: str, filename: str, data: bytes) -> str:
        relative = f"{run_id}/{safe_filename(name)}-{safe_filename(filename, 'upload')}"
        write_file(self.settings.uploads_dir, relative, data)
        return relative

    def _request(self, run: Run, spec: AppSpec) -> RunRequest:
        """What the pool needs. Uploads go by the path they were stored at: a queued run holds no file in memory."""
        values: dict[str, Any] = {}
        files: dict[str, Upload] = {}
        for name, value in (run.inputs or {}).items():
            if isinstance(value, dict) and "upload" in value:
                path = self.settings.uploads_dir / value["upload"]
                files[name] = (path.name, path)
            else:
                values[name] = value
        return RunRequest(
            run_id=run.id, workflow=spec.workflow, bindings=spec.inputs, values=values, uploads=files,
            output_nodes=spec.output_nodes, timeout_s=spec.timeout_s,
        )

    # --- waiting -------------------------------------------------------------------------------------

    def in_flight(self, run_id: str) -> bool:
        """Whether this process is running it (queued or running, not ended)."""
        return run_id in self._in_flight

    async def wait(self, run_id: str, timeout: float) -> RunOut | None:
        """Wait up to `timeout` seconds for a run this process is running to end; the run as its end was
        recorded, or None: still going, or not in flight here (already final, or unknown)."""
        in_flight = self._in_flight.get(run_id)
        if in_flight is None:
            return None
        try:
            await asyncio.wait_for(in_flight.done.wait(), timeout)
        except TimeoutError:
            return None
        return in_flight.final

    # --- cancel --------------------------------------------------------------------------------------

    async def cancel(self, run_id: str) -> str:
        if self.remote is not None and self.remote.has(run_id):
            return await self.remote.cancel(run_id)
        outcome = await self.pool.cancel(run_id)
        if outcome == "not_found":
            # Not in the pool: either finishing right now (its own result stands) or queued in the DB only.
            await self._finish(run_id, "cancelled", error=_CANCELLED, only_from=frozenset({"queued"}))
        return outcome

    # --- updates from the pool -----------------------------------------------------------------------

    async def on_update(self, update: RunUpdate) -> None:
        try:
            await self._apply(update)
        except Exception:  # an update must never kill the worker that reports it
            log.exception("could not record update %s of run %s", update.kind, update.run_id)

    async def _apply(self, update: RunUpdate) -> None:
        run_id = update.run_id
        match update.kind:
            case "started":
                # Streams first: the engine is already on the run, its progress events may follow at once.
                self.events.publish(run_id, {"event": "started", "worker": update.worker})
                at = datetime.fromtimestamp(update.at, UTC)
                in_flight = self._in_flight.get(run_id)
                await asyncio.to_thread(self._write, crud_runs.mark_running, run_id=run_id,
                                        worker=update.worker or "", started_at=at,
                                        created_at=in_flight.created_at if in_flight else None)
            case "progress":
                self.events.publish(run_id, {"event": "progress", **(update.progress or {})})
                last = self._progress_written.get(run_id, 0.0)
                if time.monotonic() - last >= _PROGRESS_WRITE_INTERVAL_S:
                    self._progress_written[run_id] = time.monotonic()
                    await asyncio.to_thread(self._write, crud_runs.update_progress, run_id=run_id,
                                            progress=update.progress or {})
            case "preview":
                if update.preview is not None:
                    mime, data = update.preview
                    self.events.publish(run_id, {"event": "preview", "mime": mime,
                                                 "data": base64.b64encode(data).decode()})
            case "retrying":
                await asyncio.to_thread(self._write, crud_runs.requeue_run, run_id=run_id)
                self.events.publish(run_id, {"event": "retrying", "error": update.error})
            case "succeeded":
                assert update.outcome is not None
                await self._finish(run_id, "succeeded", applied=update.outcome.applied,
                                   exec_ms=update.outcome.exec_ms, outputs=update)
            case "cancelled":
                await self._finish(run_id, "cancelled", error=update.error or _CANCELLED)
            case "failed" | "timed_out":
                await self._finish(run_id, update.kind, error=update.error)

    def _write(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        with self.sessions() as session:
            return fn(session, **kwargs)  # crud_runs' state changes commit

    def _store_outputs(self, run_id: str, update: RunUpdate) -> list[NewArtifact]:
        assert update.outcome is not None
        stored = []
        for index, output in enumerate(update.outcome.outputs):
            filename = f"{index:02d}-{safe_filename(output.filename)}"
            relative = f"{run_id}/{filename}"
            write_file(self.settings.outputs_dir, relative, output.data)
            mime = output.mime or mimetypes.guess_type(filename)[0] or "application/octet-stream"
            stored.append(NewArtifact(node_id=output.node_id, kind=output.kind, filename=filename,
                                      path=f"outputs/{relative}", mime=mime, size=len(output.data)))
        return stored

    async def _finish(self, run_id: str, status: str, *, applied: dict | None = None, error: dict | None = None,
                      exec_ms: float | None = None, only_from: frozenset[str] | None = None,
                      outputs: RunUpdate | None = None) -> None:
        """Record the end once (outputs stored in the same thread and transaction): events, waiters and the
        webhook follow only the write that ended the run."""
        try:
            ended = await asyncio.to_thread(self._finish_in_db, run_id, status, applied, error, exec_ms, only_from,
                                            outputs)
        finally:
            self._progress_written.pop(run_id, None)
        if ended is None:
            return
        final, webhook_url = ended
        self.events.publish(run_id, {"event": "finished", "status": final.status})
        in_flight = self._in_flight.pop(run_id, None)
        if in_flight is not None:
            in_flight.final = final
            in_flight.done.set()
        if webhook_url:
            self._send_webhook(final, webhook_url)

    def _send_webhook(self, final: RunOut, url: str) -> None:
        """The payload is the run as GET /api/runs/{id} shows it (outputs and timings included). The delivery id
        is the run's and the event's: a delivery sent again after a restart keeps it, receivers can deduplicate."""
        event = f"run.{final.status}"

        async def record(result: DeliveryResult) -> None:
            await asyncio.to_thread(self._write, crud_runs.record_webhook, run_id=final.id,
                                    delivered=result.delivered, error=result.error)

        self.webhooks.send_in_background(url, {"event": event, "run": final.model_dump(mode="json")},
                                         self.webhook_secret(final.app), event,
                                         delivery_id=str(uuid.uuid5(_DELIVERY_IDS, f"{final.id}:{event}")),
                                         on_result=record)

    def _finish_in_db(self, run_id: str, status: str, applied: dict | None, error: dict | None,
                      exec_ms: float | None, only_from: frozenset[str] | None,
                      outputs: RunUpdate | None) -> tuple[RunOut, str | None] | None:
        """The run as it ended and its webhook URL, or None when it had ended already (or is not in
        `only_from`)."""
        with self.sessions() as session:
            if only_from is not None:
                current = crud_runs.get_run(session, run_id=run_id)
                if current is None or current.status not in only_from:
                    return None
            artifacts: list[NewArtifact] = []
            if outputs is not None:
                try:
                    artifacts = self._store_outputs(run_id, outputs)
                except Exception as exc:  # e.g. a full disk: the run must still end, and say why
                    log.exception("could not store the outputs of run %s", run_id)
                    status, exec_ms = "failed", None
                    error = {"type": "storage_error", "message": f"The run succeeded but its outputs could not be "
                                                                 f"stored: {type(exc).__name__}: {exc}"}
            in_flight = self._in_flight.get(run_id)
            run = crud_runs.end_run(session, run_id=run_id, status=status, finished_at=now(), applied=applied,
                                    error=error, exec_ms=exec_ms, artifacts=artifacts,
                                    created_at=in_flight.created_at if in_flight else None)
            if run is None:  # it had ended meanwhile (a cancel): its own record stands
                for artifact in artifacts:
                    remove_file(self.settings.data_dir, artifact.path)
                return None
            return self.view(session, run, artifacts), run.webhook_url

    # --- restart -------------------------------------------------------------------------------------

    async def recover(self) -> dict[str, int]:
        """Queue again what a previous process left behind (see the module docstring), and send the webhooks it
        did not deliver."""
        for final, url in await asyncio.to_thread(self._webhooks_due):
            self._send_webhook(final, url)
        requests, counts = await asyncio.to_thread(self._recoverable)
        refused: list[tuple[str, Exception]] = []
        for recovered in requests:
            request = recovered.request
            try:
                self._dispatch(request, recovered.target, earlier_losses=recovered.earlier_losses)
            except Exception as exc:  # e.g. more runs left behind than --max-queue now allows
                refused.append((request.run_id, exc))
                continue
            self._in_flight[request.run_id] = _InFlight(recovered.created_at)
        if refused:
            await asyncio.to_thread(self._fail_unrecoverable, refused)
            counts["failed"] += len(refused)
            counts["requeued"] -= len(refused)  # re-runs come first: the ones refused were queued ones
        return counts

    def _webhooks_due(self) -> list[tuple[RunOut, str]]:
        with self.sessions() as session:
            return [(self.view(session, run), run.webhook_url) for run in crud_runs.webhooks_due(session)
                    if run.webhook_url]

    def _fail_unrecoverable(self, failures: list[tuple[str, Exception]]) -> None:
        with self.sessions() as session:
            for run_id, exc in failures:
                crud_runs.finish_run(session, run_id=run_id, status="failed", finished_at=now(), error={
                    "type": "recovery_error", "message": f"Could not queue this run again after a restart: "
                                                         f"{type(exc).__name__}: {exc}"})

    def _recoverable(self) -> tuple[list[_Recovered], dict[str, int]]:
        """In a worker thread: settle the runs left `running`, and build the requests to queue again, in order."""
        counts = {"requeued": 0, "rerun": 0, "failed": 0}
        requests: list[_Recovered] = []
        failures: list[tuple[str, Exception]] = []
        with self.sessions() as session:
            interrupted = crud_runs.runs_with_status(session, status="running")
            for run in interrupted:
                if run.attempts >= MAX_ATTEMPTS:
                    crud_runs.finish_run(session, run_id=run.id, status="failed", finished_at=now(), error={
                        "type": "app_restarted",
                        "message": f"The app stopped while this run was running (attempt {run.attempts} of "
                                   f"{MAX_ATTEMPTS}); it is not run again.",
                    })
                    counts["failed"] += 1
                else:
                    crud_runs.requeue_run(session, run_id=run.id)
                    counts["rerun"] += 1
            # Re-runs first (they were started before anything still queued), then the queue in its order.
            rerun_ids = {run.id for run in interrupted if run.attempts < MAX_ATTEMPTS}
            queued = crud_runs.queued_runs(session)
            pending = [r for r in queued if r.id in rerun_ids] + [r for r in queued if r.id not in rerun_ids]
            for run in pending:
                try:
                    request = self._request(run, self.spec_of(session, run.version_id))
                    target = self._target(crud_apps.runnable_by_id(session, version_id=run.version_id))
                    # Attempts that started and did not finish (an engine lost, or this app stopped under them)
                    # count against the run's engine-loss limit after the restart too.
                    lost = tuple(f"attempt {i} did not finish (the engine or the app stopped before the app "
                                 f"restarted)" for i in range(1, run.attempts + 1))
                    requests.append(_Recovered(request, run.created_at, target, lost))
                except Exception as exc:  # one broken record must not keep the app from starting
                    failures.append((run.id, exc))
                    continue
                if run.id not in rerun_ids:
                    counts["requeued"] += 1
        self._fail_unrecoverable(failures)
        counts["failed"] += len(failures)
        return requests, counts

    def requeue_interrupted(self, run_ids: list[str]) -> None:
        """At a clean shutdown, runs cut short go back to `queued` without using up an attempt."""
        with self.sessions() as session:
            for run_id in run_ids:
                crud_runs.requeue_run(session, run_id=run_id, keep_attempts=False)
