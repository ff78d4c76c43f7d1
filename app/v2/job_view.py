"""A run as the Comfy API v2 shows it: the contract's Job (status words, progress, outputs as assets, metrics,
expires_at, links) and its SSE payloads. Outputs are assets made with the run's end (db.crud_assets.add_output_assets;
a run that ended before: on first view, AssetStore.of_output), each with a stable id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.assets.store import AssetStore
from app.runs.redact import scrub_paths
from runtimes import v2wire
from runtimes.contract import RunStatus

# Retention off (no --keep-outputs): a job is kept until it is deleted, which the contract's required date says
# as this far date.
FOREVER = datetime(9999, 12, 31, tzinfo=UTC)
TERMINAL = v2wire.TERMINAL_STATUSES


@dataclass(frozen=True)
class Surface:
    """Where the job is read: the server-wide v2 (`/api/v2`) or an app's base URL (`/apps/{slug}/api/v2`, pinned
    `/apps/{slug}/versions/{n}/api/v2`). Links in answers keep that prefix, host-relative; `origin` (scheme and
    host) makes the output URLs absolute."""

    prefix: str  # e.g. "/apps/demo/api/v2"
    origin: str
    app_id: int | None = None  # an app's surface answers only for its own jobs

    def link(self, path: str) -> str:
        return f"{self.prefix}{path}"


@dataclass(frozen=True)
class LiveRun:
    """A run still queued or running in this process (app.runs.inflight), with what `job_of` reads of a run's record:
    a poll of it needs no trip to the database."""

    id: str
    status: str
    created_at: datetime
    started_at: datetime | None
    queue_ms: float | None
    finished_at: None = None
    exec_ms: None = None
    error: None = None
    files_removed: None = None
    progress: None = None


def expires_at(created_at: datetime, keep_days: float | None) -> datetime:
    return created_at + timedelta(days=keep_days) if keep_days is not None else FOREVER


def status_of(run_status: str, canceling: bool) -> str:
    if canceling and run_status in (RunStatus.QUEUED.value, RunStatus.RUNNING.value):
        return "canceling"
    return v2wire.JOB_STATUS_OF_RUN.get(run_status, run_status)


def progress_of(run: Any, nodes_total: int, live: dict[str, Any] | None) -> dict[str, Any] | None:
    """The contract's Progress from the run's latest {node, value, max} (steps of the node running); a finished run
    is complete, a queued one has none."""
    if run.status == RunStatus.SUCCEEDED.value:
        return {"value": 1.0, "nodes_done": nodes_total, "nodes_total": nodes_total, "current_node": None,
                "current_node_class": None, "step": None, "steps": None, "message": None}
    step = live if live is not None else run.progress
    if run.status != RunStatus.RUNNING.value:
        return None
    return step_progress(step, nodes_total)


def step_progress(step: dict[str, Any] | None, nodes_total: int) -> dict[str, Any]:
    value = steps = done = node = None
    if step and isinstance(step.get("max"), int | float) and step["max"]:
        done, steps = int(step.get("value") or 0), int(step["max"])
        value = min(1.0, max(0.0, done / steps))
        node = str(step.get("node")) if step.get("node") is not None else None
    return {"value": value or 0.0, "nodes_done": 0, "nodes_total": nodes_total, "current_node": node,
            "current_node_class": None, "step": done, "steps": steps,
            "message": f"{done}/{steps}" if steps else None}


def error_of(run: Any) -> dict[str, Any] | None:
    if run.status not in (RunStatus.FAILED.value, RunStatus.TIMED_OUT.value) or not run.error:
        return None
    error = scrub_paths(run.error) or {}
    code = "timeout" if run.status == RunStatus.TIMED_OUT.value else str(error.get("type") or "execution_error")
    return {"code": code, "message": str(error.get("message") or code), "node_id": error.get("node_id"),
            "class_type": error.get("node_type"), "traceback": None}


def outputs_of(session: Session | None, store: AssetStore, surface: Surface, run: Any, artifacts: Sequence[Any],
               expires: datetime) -> list[dict[str, Any]]:
    """`artifacts` with their asset ids (`asset_id`, `asset_hash`); a session is needed only for those without."""
    if run.files_removed and run.files_removed.get("outputs"):
        return []  # retention removed them
    found = []
    for artifact in artifacts:
        asset_id, asset_hash = getattr(artifact, "asset_id", None), getattr(artifact, "asset_hash", None)
        if asset_id is None:  # a run that ended before its outputs got assets at the end: made now, once
            assert session is not None, "an output without its asset needs a session to make it"
            asset = store.of_output(session, artifact, expires_at=None if expires == FOREVER else expires)
            asset_id, asset_hash = asset.id, asset.hash
        found.append({
            "node_id": artifact.node_id, "name": artifact.filename,
            "type": artifact.kind if artifact.kind in v2wire.OUTPUT_TYPES else "file",
            "content_type": artifact.mime, "size_bytes": artifact.size, "id": asset_id, "hash": asset_hash,
            "url": surface.origin + surface.link(f"/assets/{asset_id}/content"),
            "url_expires_at": _iso(expires), "job_id": run.id})
    return found


def job_of(session: Session | None, store: AssetStore, surface: Surface, run: Any, artifacts: Sequence[Any], *,
           keep_days: float | None, nodes_total: int, queue_position: int | None,
           live_progress: dict[str, Any] | None, canceling: bool) -> dict[str, Any]:
    expires = expires_at(run.created_at, keep_days)
    # Past its retention (--keep-outputs removed its files), a job is `expired`: its record stays, its outputs are gone.
    status = "expired" if run.files_removed and run.files_removed.get("outputs") else status_of(run.status, canceling)
    return {
        "id": run.id, "status": status, "created_at": _iso(run.created_at), "started_at": _iso(run.started_at),
        "completed_at": _iso(run.finished_at), "expires_at": _iso(expires),
        "queue_position": queue_position if status == "queued" else None,
        "progress": progress_of(run, nodes_total, live_progress),
        "outputs": outputs_of(session, store, surface, run, artifacts, expires)
        if run.status == RunStatus.SUCCEEDED.value else [],
        "error": error_of(run),
        "metrics": {"queue_ms": _int(run.queue_ms), "execution_ms": _int(run.exec_ms)},
        "urls": {"self": surface.link(f"/jobs/{run.id}"), "events": surface.link(f"/jobs/{run.id}/events"),
                 "cancel": surface.link(f"/jobs/{run.id}/cancel"),
                 "workflow": surface.link(f"/jobs/{run.id}/workflow")},
    }


def _int(value: float | None) -> int | None:
    return None if value is None else round(value)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")
