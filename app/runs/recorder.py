"""Recording what runners report about a run: its start, progress, retries and its end, with the outputs stored
in the same thread and transaction as the end. Streams, waiters and the webhook follow only the write that ended
the run (a run cancelled while its runner reports on it keeps the end that was written first)."""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.runs.deliveries import RunWebhooks
from app.runs.events import RunEvents
from app.runs.inflight import EndedRecord, InFlightRuns
from app.runs.storage import remove_file, write_file
from app.runs.versions import Versions
from app.runs.views import RunOut, run_view
from app.settings import Settings
from db import crud_runs
from db.crud_runs import NewArtifact
from db.models import utcnow
from runtimes.contract import ErrorRecord, RunOutcome, RunStatus, RunUpdate, cancelled_error, run_error
from runtimes.files import safe_filename
from runtimes.media_types import mime_of

log = logging.getLogger(__name__)


class RunRecorder:
    def __init__(self, *, settings: Settings, sessions: sessionmaker[Session], versions: Versions,
                 in_flight: InFlightRuns, events: RunEvents, webhooks: RunWebhooks,
                 on_end: Callable[[RunOut], None] = lambda run: None) -> None:
        self.settings = settings
        self.sessions = sessions
        self.versions = versions
        self.in_flight = in_flight
        self.events = events
        self.webhooks = webhooks
        self.on_end = on_end  # told of each run's end, once (app.metrics)

    async def on_update(self, update: RunUpdate) -> None:
        """Every runner's update callback."""
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
                started_at = datetime.fromtimestamp(update.at, UTC)
                if (in_flight := self.in_flight.get(run_id)) is not None:
                    in_flight.started_at = started_at  # polls answered from memory say "running" from now on
                await asyncio.to_thread(self._write, crud_runs.mark_running, run_id=run_id,
                                        status=RunStatus.RUNNING, worker=update.worker or "",
                                        started_at=started_at,
                                        created_at=in_flight.created_at if in_flight else None)
            case "progress":
                # Kept in memory, written with the run's end: a database write per step cost more than the step.
                if (in_flight := self.in_flight.get(run_id)) is not None:
                    in_flight.progress = update.progress
                self.events.publish(run_id, {"event": "progress", **(update.progress or {})})
            case "preview":
                if update.preview is not None and self.events.has_subscribers(run_id):
                    mime, data = update.preview
                    self.events.publish(run_id, {"event": "preview", "mime": mime,
                                                 "data": base64.b64encode(data).decode()})
            case "retrying":
                if (in_flight := self.in_flight.get(run_id)) is not None:
                    in_flight.progress, in_flight.started_at = None, None
                await asyncio.to_thread(self._write, crud_runs.requeue_run, run_id=run_id, status=RunStatus.QUEUED)
                self.events.publish(run_id, {"event": "retrying", "error": update.error})
            case "succeeded":
                assert update.outcome is not None
                await self.finish(run_id, RunStatus.SUCCEEDED, outcome=update.outcome)
            case "cancelled":
                await self.finish(run_id, RunStatus.CANCELLED, error=update.error or cancelled_error())
            case "failed" | "timed_out":
                await self.finish(run_id, RunStatus(update.kind), error=update.error)

    def _write(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        with self.sessions() as session:
            return fn(session, **kwargs)  # crud_runs' state changes commit

    async def finish(self, run_id: str, status: RunStatus, *, error: ErrorRecord | None = None,
                     outcome: RunOutcome | None = None, only_from: frozenset[str] | None = None) -> None:
        """Record the run's end once; events, waiters and the webhook follow only the write that ended it.
        `only_from`: end it only if its status is one of these (e.g. a cancel of a run queued in the database)."""
        assert status.final, status
        ended = await asyncio.to_thread(self._finish_in_db, run_id, status, error, outcome, only_from)
        if ended is None:
            return
        final, webhook_url, recent = ended
        # The run as it ended goes with the event: every stream following it answers from it, not from the database
        # (50 streams on one run were 50 reads at once, queued before the status polls in the worker threads).
        self.events.publish(run_id, {"event": "finished", "status": final.status, "run": final})
        self.in_flight.ended(run_id, final, recent)
        self.on_end(final)
        if webhook_url:
            self.webhooks.send(final, webhook_url)

    def _finish_in_db(self, run_id: str, status: RunStatus, error: ErrorRecord | None, outcome: RunOutcome | None,
                      only_from: frozenset[str] | None) -> tuple[RunOut, str | None, EndedRecord] | None:
        """The run as it ended, its webhook URL and its record as written; None when it had ended already (or is not
        in `only_from`)."""
        with self.sessions() as session:
            if only_from is not None:
                current = crud_runs.get_run(session, run_id=run_id)
                if current is None or current.status not in only_from:
                    return None
            artifacts: list[NewArtifact] = []
            applied = exec_ms = None
            if outcome is not None:
                applied, exec_ms = outcome.applied, outcome.exec_ms
                try:
                    artifacts = self._store_outputs(run_id, outcome)
                except Exception as exc:  # e.g. a full disk: the run must still end, and say why
                    log.exception("could not store the outputs of run %s", run_id)
                    status, exec_ms = RunStatus.FAILED, None
                    # An OSError's text names the server's path: its reason is what a caller can act on.
                    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                    error = run_error("storage_error", f"The run succeeded but its outputs could not be stored "
                                                       f"({type(exc).__name__}: {reason}); free some disk space "
                                                       f"on the server and run it again.")
            in_flight = self.in_flight.get(run_id)
            run = crud_runs.end_run(session, run_id=run_id, status=status, finished_at=utcnow(), applied=applied,
                                    error=error, exec_ms=exec_ms, artifacts=artifacts,
                                    created_at=in_flight.created_at if in_flight else None,
                                    progress=in_flight.progress if in_flight else None,
                                    # Outputs are the Comfy API v2's assets too: made here, a poll writes nothing.
                                    output_assets=True, assets_kept_for=self._outputs_kept_for())
            if run is None:  # it had ended meanwhile (a cancel): its own record stands
                for artifact in artifacts:
                    remove_file(self.settings.data_dir, artifact.path)
                return None
            data = tuple(output.data for output in outcome.outputs) if outcome is not None and artifacts else ()
            return run_view(session, self.versions, run, artifacts), run.webhook_url, EndedRecord(run, artifacts, data)

    def _outputs_kept_for(self) -> timedelta | None:
        days = self.settings.keep_outputs_days
        return timedelta(days=days) if days is not None else None

    def _store_outputs(self, run_id: str, outcome: RunOutcome) -> list[NewArtifact]:
        """All of a run's outputs, or none: the files stored before one that fails are removed again."""
        stored: list[NewArtifact] = []
        try:
            for index, output in enumerate(outcome.outputs):
                filename = f"{index:02d}-{safe_filename(output.filename)}"
                relative = f"{run_id}/{filename}"
                write_file(self.settings.outputs_dir, relative, output.data)
                mime = output.mime or mime_of(filename)
                stored.append(NewArtifact(node_id=output.node_id, kind=output.kind, filename=filename,
                                          path=f"outputs/{relative}", mime=mime, size=len(output.data),
                                          asset_id=str(uuid.uuid4())))
        except BaseException:
            for artifact in stored:
                remove_file(self.settings.data_dir, artifact.path)
            raise
        return stored
