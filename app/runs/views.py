"""A run as the API, its webhooks and its waiters see it (`RunOut`), and the history pages of runs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Row
from sqlalchemy.orm import Session

from app.runs.redact import scrub_paths
from app.runs.versions import Versions
from db import crud_runs
from db.crud_runs import NewArtifact
from db.models import Artifact, Run
from runtimes.contract import RunStatus


class OutputOut(BaseModel):
    url: str | None = Field(description="where to download it; null once retention removed it")
    filename: str
    node: str
    kind: str
    mime: str
    size: int
    removed: bool = Field(False, description="the file was removed by retention (--keep-outputs)")

    @classmethod
    def of(cls, artifact: Artifact | NewArtifact | Row[Any], *, removed: bool = False) -> OutputOut:
        return cls(url=None if removed else f"/files/{artifact.path}", filename=artifact.filename,
                   node=artifact.node_id, kind=artifact.kind, mime=artifact.mime, size=artifact.size, removed=removed)


class Timings(BaseModel):
    queue_ms: float | None
    exec_ms: float | None
    total_ms: float | None


class WebhookOut(BaseModel):
    status: str = Field(description="pending (due, retried with backoff), delivered, or failed (after its retries)")
    error: str | None = Field(None, description="why the last attempt failed")


class RunOut(BaseModel):
    id: str
    app: str
    version: int
    status: str
    queue_position: int | None = None
    progress: dict[str, Any] | None = None
    timings: Timings
    inputs: dict[str, Any] = Field(description="the values as applied (seed included) once the run started; "
                                               "as submitted before")
    outputs: list[OutputOut] = Field(default_factory=list)
    files_removed: dict[str, str] | None = Field(None, description="when retention removed the run's files: "
                                                                   "{outputs?: time, inputs?: time}")
    error: dict[str, Any] | None = Field(None, description="why it failed: type, message, node_id, node_type, "
                                                           "input, details (server paths cut to file names)")
    worker: str | None = None
    attempts: int = 0
    webhook: WebhookOut | None = Field(None, description="the delivery of the run's webhook, once it ended")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    urls: dict[str, str]

    @classmethod
    def of(cls, run: Run | Row[Any], *, slug: str, version: int, artifacts: Sequence[Artifact | NewArtifact | Row[Any]],
           queue_position: int | None = None) -> RunOut:
        removed = run.files_removed or None
        outputs_gone = bool(removed and removed.get("outputs"))
        return cls(
            id=run.id, app=slug, version=version, status=run.status, queue_position=queue_position,
            progress=run.progress, timings=Timings(queue_ms=run.queue_ms, exec_ms=run.exec_ms, total_ms=run.total_ms),
            inputs=run.applied or run.inputs or {}, outputs=[OutputOut.of(a, removed=outputs_gone) for a in artifacts],
            files_removed=removed, error=scrub_paths(run.error),
            worker=run.worker, attempts=run.attempts, created_at=run.created_at, started_at=run.started_at,
            webhook=WebhookOut(status=run.webhook_status, error=run.webhook_error) if run.webhook_status else None,
            finished_at=run.finished_at,
            urls={"self": f"/api/runs/{run.id}", "events": f"/api/runs/{run.id}/events",
                  "cancel": f"/api/runs/{run.id}/cancel"},
        )


class RunPage(BaseModel):
    runs: list[RunOut]
    next_before: str | None = Field(None, description="pass as ?before= for the next (older) page")


def run_view(session: Session, versions: Versions, run: Run | Row[Any],
             artifacts: Sequence[Artifact | NewArtifact | Row[Any]] | None = None,
             queue_position: int | None = None) -> RunOut:
    """The run (an ORM object or its row) as the API shows it; its files are read unless given. Only a succeeded
    run has files (they are written with that end), so the others' are not looked for: most status polls are of
    runs still queued or running."""
    if artifacts is None:
        artifacts = crud_runs.artifacts_of(session, run_id=run.id) if run.status == RunStatus.SUCCEEDED else []
    return RunOut.of(run, slug=versions.slug(session, run.app_id), version=versions.number(session, run.version_id),
                     artifacts=artifacts, queue_position=queue_position)


def history(session: Session, *, app_id: int | None = None, status: str | None = None, api_key_id: int | None = None,
            limit: int = 50, before: str | None = None) -> list[tuple[Run, list[Row[Any]]]]:
    """A page of runs, newest first, each with its files: two queries, whatever the page's size."""
    runs = crud_runs.list_runs(session, app_id=app_id, status=status, api_key_id=api_key_id, limit=limit,
                               before=before)
    files = crud_runs.artifacts_by_run(session, run_ids=[run.id for run in runs])
    return [(run, files.get(run.id, [])) for run in runs]
