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
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.run_events import RunEvents
from app.schemas import RunOut
from app.settings import Settings
from app.storage import safe_filename, write_file
from app.webhooks import WebhookSender
from db import crud_runs
from db.models import FINAL_STATUSES, App, AppVersion, Run
from publisher import AppSpec
from runtimes.execute import RunRequest
from runtimes.modal.remote import RemoteRuns, RemoteTarget
from runtimes.pool import QueueFullError, RunUpdate, WorkerPool

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2
_CANCELLED = {"type": "cancelled", "message": "Cancelled by request."}
_PROGRESS_WRITE_INTERVAL_S = 0.5  # progress goes to streams at once, to the DB at most this often


def now() -> datetime:
    return datetime.now(UTC)


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
        route: Callable[[int, int], RemoteTarget | None] | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.pool = pool
        self.webhooks = webhooks
        self.webhook_secret = webhook_secret  # app slug -> its signing secret (derived, never stored)
        self.remote = remote  # runs of apps whose runtime is a Modal deployment
        self.route = route  # (app id, version id) -> the deployment that serves it, or None: the local pool
        self.events = RunEvents()
        self._progress_written: dict[str, float] = {}
        self._finished: dict[str, asyncio.Event] = {}
        self._reserved = 0  # submissions between the queue check and the pool

    # --- submission ---------------------------------------------------------------------------------

    async def submit(
        self,
        *,
        app: App,
        version: AppVersion,
        values: dict[str, Any],
        uploads: dict[str, tuple[str, bytes]],
        key_scope: str,
        api_key_id: int | None,
        idempotency_key: str | None,
        webhook_url: str | None,
    ) -> tuple[Run, bool]:
        """Persist, then queue. Returns (run, created); a repeated Idempotency-Key returns the first run."""
        scope = f"{app.id}:{key_scope}:{idempotency_key}" if idempotency_key else None
        # Reserve a place before the DB write (other submissions run meanwhile): the pool then never
        # refuses a run that is already recorded.
        if self.pool.queued_count() + self._reserved >= self.settings.max_queue:
            raise QueueFullError(f"the queue holds {self.settings.max_queue} runs", self._retry_after())
        self._reserved += 1
        try:
            run, created = await asyncio.to_thread(self._persist, app, version, values, uploads, scope, api_key_id,
                                                   webhook_url)
            if created:
                self._finished[run.id] = asyncio.Event()
                target = await asyncio.to_thread(self.route, app.id, version.id) if self.route else None
                self._dispatch(self._request(run, AppSpec.from_dict(version.spec), uploads), target)
        finally:
            self._reserved -= 1
        return run, created

    def _dispatch(self, request: RunRequest, target: RemoteTarget | None) -> None:
        if target is not None and self.remote is not None:
            self.remote.submit(request, target)
        else:
            self.pool.submit(request)

    def _persist(self, app: App, version: AppVersion, values: dict[str, Any],
                 uploads: dict[str, tuple[str, bytes]], scope: str | None, api_key_id: int | None,
                 webhook_url: str | None) -> tuple[Run, bool]:
        with self.sessions() as session:
            if scope is not None:
                existing = crud_runs.find_run_by_scope(session, scope=scope)
                if existing is not None:
                    return existing, False
            run_id = uuid.uuid4().hex
            stored = {name: self._store_upload(run_id, name, filename, data)
                      for name, (filename, data) in uploads.items()}
            inputs = {**values, **{name: {"upload": path} for name, path in stored.items()}}
            try:
                run = crud_runs.create_run(session, run_id=run_id, app_id=app.id, version_id=version.id,
                                           inputs=inputs, webhook_url=webhook_url, idempotency_scope=scope,
                                           api_key_id=api_key_id)
            except IntegrityError:  # the same key, submitted twice at the same moment: the first one wins
                existing = crud_runs.find_run_by_scope(session, scope=scope) if scope else None
                if existing is None:
                    raise
                return existing, False
            return run, True

    def _retry_after(self) -> float:
        return max(1.0, min(60.0, self.pool.queued_count() / 50))

    def _store_upload(self, run_id: str, name: str, filename: str, data: bytes) -> str:
        relative = f"{run_id}/{safe_filename(name)}-{safe_filename(filename, 'upload')}"
        write_file(self.settings.uploads_dir, relative, data)
        return relative

    def _request(self, run: Run, spec: AppSpec, uploads: dict[str, tuple[str, bytes]] | None = None) -> RunRequest:
        """What the pool needs; uploads come from memory at submission, from storage after a restart."""
        values, files = {}, dict(uploads or {})
        for name, value in (run.inputs or {}).items():
            if isinstance(value, dict) and "upload" in value:
                if name not in files:
                    path = self.settings.uploads_dir / value["upload"]
                    files[name] = (path.name, path.read_bytes())
            else:
                values[name] = value
        return RunRequest(
            run_id=run.id, workflow=spec.workflow, bindings=spec.inputs, values=values, uploads=files,
            output_nodes=spec.output_nodes, timeout_s=spec.timeout_s,
        )

    # --- waiting -------------------------------------------------------------------------------------

    async def wait(self, run_id: str, timeout: float) -> bool:
        """True when the run reached a final state within `timeout` seconds."""
        finished = self._finished.get(run_id)
        if finished is None:
            return True  # not in flight here: already final (or unknown)
        try:
            await asyncio.wait_for(finished.wait(), timeout)
        except TimeoutError:
            return False
        return True

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
                at = datetime.fromtimestamp(update.at, UTC)
                await asyncio.to_thread(self._write, crud_runs.mark_running, run_id=run_id,
                                        worker=update.worker or "", started_at=at)
                self.events.publish(run_id, {"event": "started", "worker": update.worker})
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
                try:
                    await asyncio.to_thread(self._store_outputs, run_id, update)
                except Exception as exc:  # e.g. a full disk: the run must still end, and say why
                    log.exception("could not store the outputs of run %s", run_id)
                    await self._finish(run_id, "failed", applied=update.outcome.applied, error={
                        "type": "storage_error", "message": f"The run succeeded but its outputs could not be "
                                                            f"stored: {type(exc).__name__}: {exc}"})
                    return
                await self._finish(run_id, "succeeded", applied=update.outcome.applied,
                                   exec_ms=update.outcome.exec_ms)
            case "cancelled":
                await self._finish(run_id, "cancelled", error=update.error or _CANCELLED)
            case "failed" | "timed_out":
                await self._finish(run_id, update.kind, error=update.error)

    def _write(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        with self.sessions() as session:
            result = fn(session, **kwargs)
            session.commit()
            return result

    def _store_outputs(self, run_id: str, update: RunUpdate) -> None:
        assert update.outcome is not None
        with self.sessions() as session:
            for index, output in enumerate(update.outcome.outputs):
                filename = f"{index:02d}-{safe_filename(output.filename)}"
                relative = f"{run_id}/{filename}"
                write_file(self.settings.outputs_dir, relative, output.data)
                mime = output.mime or mimetypes.guess_type(filename)[0] or "application/octet-stream"
                crud_runs.add_artifact(session, run_id=run_id, node_id=output.node_id, kind=output.kind,
                                       filename=filename, path=f"outputs/{relative}", mime=mime,
                                       size=len(output.data))
            session.commit()

    async def _finish(self, run_id: str, status: str, *, applied: dict | None = None, error: dict | None = None,
                      exec_ms: float | None = None, only_from: frozenset[str] | None = None) -> None:
        """Record the end once: events, waiters and the webhook follow only the write that ended the run."""
        try:
            run, ended = await asyncio.to_thread(self._finish_in_db, run_id, status, applied, error, exec_ms,
                                                 only_from)
        finally:
            self._progress_written.pop(run_id, None)
        if not ended:
            return
        self.events.publish(run_id, {"event": "finished", "status": run.status})
        finished = self._finished.pop(run_id, None)
        if finished is not None:
            finished.set()
        if run.webhook_url:
            self._send_webhook(run)

    def _finish_in_db(self, run_id: str, status: str, applied: dict | None, error: dict | None,
                      exec_ms: float | None, only_from: frozenset[str] | None) -> tuple[Run | None, bool]:
        with self.sessions() as session:
            current = crud_runs.get_run(session, run_id=run_id)
            if current is None or current.status in FINAL_STATUSES:
                return current, False
            if only_from is not None and current.status not in only_from:
                return current, False
            return crud_runs.finish_run(session, run_id=run_id, status=status, finished_at=now(), applied=applied,
                                        error=error, exec_ms=exec_ms), True

    def _send_webhook(self, run: Run) -> None:
        """The payload is the run as GET /api/runs/{id} shows it (outputs and timings included)."""
        with self.sessions() as session:
            app = session.get(App, run.app_id)
            version = session.get(AppVersion, run.version_id)
            slug = app.slug if app else ""
            body = RunOut.of(run, slug=slug, version=version.number if version else 0,
                             artifacts=crud_runs.artifacts_of(session, run_id=run.id)).model_dump(mode="json")
        event = f"run.{run.status}"
        self.webhooks.send_in_background(run.webhook_url, {"event": event, "run": body},
                                         self.webhook_secret(slug), event)

    # --- restart -------------------------------------------------------------------------------------

    def recover(self) -> dict[str, int]:
        """Queue again what a previous process left behind (see the module docstring)."""
        counts = {"requeued": 0, "rerun": 0, "failed": 0}
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
            specs: dict[int, AppSpec] = {}
            for run in pending:
                try:
                    if run.version_id not in specs:
                        specs[run.version_id] = AppSpec.from_dict(session.get(AppVersion, run.version_id).spec)
                    target = self.route(run.app_id, run.version_id) if self.route else None
                    self._dispatch(self._request(run, specs[run.version_id]), target)
                except Exception as exc:  # one broken record must not keep the app from starting
                    crud_runs.finish_run(session, run_id=run.id, status="failed", finished_at=now(), error={
                        "type": "recovery_error", "message": f"Could not queue this run again after a restart: "
                                                             f"{type(exc).__name__}: {exc}"})
                    counts["failed"] += 1
                    continue
                self._finished[run.id] = asyncio.Event()
                if run.id not in rerun_ids:
                    counts["requeued"] += 1
        return counts

    def requeue_interrupted(self, run_ids: list[str]) -> None:
        """At a clean shutdown, runs cut short go back to `queued` without using up an attempt."""
        with self.sessions() as session:
            for run_id in run_ids:
                crud_runs.requeue_run(session, run_id=run_id, keep_attempts=False)
