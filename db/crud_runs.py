"""Runs and the files they produced.

The statuses are the run contract's (runtimes.contract.RunStatus): callers say which one a change writes, and this
layer knows only that a run has ended once it has a finished_at. Write functions commit. State changes are
conditional UPDATEs ("... WHERE the run has not ended"), so a run cancelled from the API while a worker reports on
it keeps its end, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, Update, and_, bindparam, case, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from db import crud_assets
from db.models import App, Artifact, Run, utcnow

WEBHOOK_PENDING, WEBHOOK_DELIVERED, WEBHOOK_FAILED = "pending", "delivered", "failed"


class RunNotFoundError(LookupError):
    """A state change named a run id that is not in the database."""


def _ms(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() * 1000.0


_RUNS = Run.__table__
_UNFINISHED = _RUNS.c.finished_at.is_(None)
# Every run is inserted once and updated at least twice: these statements are built once (Core, bound
# parameters); building one per call cost as much CPU as running it.
_INSERT_RUN = insert(_RUNS)
_ARTIFACTS = Artifact.__table__
_INSERT_ARTIFACTS = insert(_ARTIFACTS)
_INSERT_ARTIFACTS_RETURNING_ID = _INSERT_ARTIFACTS.returning(_ARTIFACTS.c.id, sort_by_parameter_order=True)
_ARTIFACTS_OF = select(_ARTIFACTS).where(_ARTIFACTS.c.run_id == bindparam("run_id")).order_by(_ARTIFACTS.c.id)
# Status polling reads this: the run and whether its app is public (who may read it), in one query.
_RUN_AND_ACCESS = (select(_RUNS, App.__table__.c.public.label("app_public"))
                   .join_from(_RUNS, App.__table__, App.__table__.c.id == _RUNS.c.app_id)
                   .where(_RUNS.c.id == bindparam("run_id")))
# Values computed in SQL, so two updates never read the same old value.
_SQL_VALUES: dict[str | None, dict[str, Any]] = {
    None: {},
    "next_attempt": {"attempts": _RUNS.c.attempts + 1},
    "give_back_attempt": {"attempts": case((_RUNS.c.attempts > 0, _RUNS.c.attempts - 1), else_=0)},
    # A run's end makes its webhook due, in the same write: a restart then finds what it must still deliver.
    "webhook_due": {"webhook_status": case((_RUNS.c.webhook_url.is_not(None), WEBHOOK_PENDING), else_=None)},
}


@functools.cache
def _unfinished_update(columns: tuple[str, ...], sql: str | None, whole_row: bool) -> Update:
    values = {c: bindparam(f"new_{c}", type_=_RUNS.c[c].type) for c in columns} | _SQL_VALUES[sql]
    return (update(_RUNS).where(_RUNS.c.id == bindparam("run_id"), _UNFINISHED).values(values)
            .returning(*(_RUNS.c if whole_row else (_RUNS.c.id,))))


def _update_unfinished(session: Session, run_id: str, *, sql: str | None = None, whole_row: bool = True,
                       **values: Any) -> Row[Any] | None:
    """Apply `values` (and the `sql` ones of _SQL_VALUES) unless the run is final, without committing. The run's
    row as updated (only its id unless `whole_row`: its JSON columns cost decoding), or None if it was final;
    RunNotFoundError if no such run. A Core UPDATE ... RETURNING, not the ORM's bulk update, which costs several
    times as much CPU. A copy of the run this session holds is refreshed."""
    statement = _unfinished_update(tuple(sorted(values)), sql, whole_row)
    row = session.execute(statement, {"run_id": run_id, **{f"new_{k}": v for k, v in values.items()}}).one_or_none()
    if row is None:
        if session.scalar(select(_RUNS.c.id).where(_RUNS.c.id == run_id)) is None:
            raise RunNotFoundError(run_id)
        return None
    if (cached := session.identity_map.get(identity_key(Run, run_id))) is not None:
        session.refresh(cached)  # reloaded rather than expired: it stays readable after the session closes
    return row


def _created_at(session: Session, run_id: str) -> datetime:
    created_at = session.scalar(select(Run.created_at).where(Run.id == run_id))
    if created_at is None:
        raise RunNotFoundError(run_id)
    return created_at


def create_run(
    session: Session,
    *,
    run_id: str,
    status: str,
    app_id: int,
    version_id: int,
    inputs: dict[str, Any],
    webhook_url: str | None = None,
    idempotency_scope: str | None = None,
    api_key_id: int | None = None,
) -> Run:
    """A new run (`status`: queued), as written (a detached copy: the session does not track it). Raises sqlalchemy's
    IntegrityError (session rolled back, still usable) when `idempotency_scope` is taken: the caller then
    answers with find_run_by_scope's run."""
    values = {"id": run_id, "app_id": app_id, "version_id": version_id, "status": str(status),
              "inputs": inputs, "webhook_url": webhook_url, "idempotency_scope": idempotency_scope,
              "api_key_id": api_key_id, "created_at": utcnow(), "attempts": 0}
    try:
        session.execute(_INSERT_RUN, values)  # Core: every submission takes this path; the ORM's flush costs more
        session.commit()
    except IntegrityError:
        session.rollback()
        raise
    return Run(**values)


def get_run(session: Session, *, run_id: str) -> Run | None:
    return session.get(Run, run_id)


def run_and_access(session: Session, *, run_id: str) -> Row[Any] | None:
    """The run's row, with `app_public`: whether its app is public (a detached read: the session keeps nothing)."""
    return session.execute(_RUN_AND_ACCESS, {"run_id": run_id}).one_or_none()


def find_run_by_scope(session: Session, *, scope: str) -> Run | None:
    return session.scalar(select(Run).where(Run.idempotency_scope == scope))


def list_runs(
    session: Session,
    *,
    app_id: int | None = None,
    status: str | None = None,
    api_key_id: int | None = None,
    limit: int = 50,
    before: str | None = None,
) -> list[Run]:
    """Newest first. `before`: the last run id of the previous page; the page starts just after it.

    An unknown `before` id gives an empty page (not the first page again, which would loop a client).
    """
    query = select(Run)
    if app_id is not None:
        query = query.where(Run.app_id == app_id)
    if status is not None:
        query = query.where(Run.status == str(status))
    if api_key_id is not None:
        query = query.where(Run.api_key_id == api_key_id)
    if before is not None:
        cursor = session.get(Run, before)
        if cursor is None:
            return []
        # (created_at, id) is a total order: runs created in the same microsecond are neither lost nor repeated.
        query = query.where(
            or_(Run.created_at < cursor.created_at, and_(Run.created_at == cursor.created_at, Run.id < cursor.id))
        )
    return list(session.scalars(query.order_by(Run.created_at.desc(), Run.id.desc()).limit(limit)))


def count_runs(session: Session, *, status: str) -> int:
    return session.scalar(select(func.count()).select_from(Run).where(Run.status == str(status))) or 0


def runs_with_status(session: Session, *, status: str) -> list[Run]:
    """Oldest first (by created_at, then id)."""
    return list(session.scalars(select(Run).where(Run.status == str(status)).order_by(Run.created_at, Run.id)))


def mark_running(session: Session, *, run_id: str, status: str, worker: str, started_at: datetime,
                 created_at: datetime | None = None) -> None:
    """Start one attempt (`status`: running): attempts += 1, queue_ms = created -> this start. Ignored if the run
    has ended. `created_at`, when the caller knows it, saves reading it."""
    _update_unfinished(
        session,
        run_id,
        status=str(status),  # plain text: a driver may adapt an enum member by its name
        worker=worker,
        started_at=started_at,
        queue_ms=_ms(created_at or _created_at(session, run_id), started_at),
        sql="next_attempt",
        whole_row=False,
    )
    session.commit()


@dataclass(frozen=True)
class NewArtifact:
    """A file a run produced, stored under the data dir at `path`."""

    node_id: str
    kind: str
    filename: str
    path: str
    mime: str
    size: int
    asset_id: str | None = None  # its Comfy API v2 asset's id, when the caller chose it (None: made with the asset)


def end_run(
    session: Session,
    *,
    run_id: str,
    status: str,
    finished_at: datetime,
    applied: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    exec_ms: float | None = None,
    artifacts: Sequence[NewArtifact] = (),
    created_at: datetime | None = None,
    progress: dict[str, Any] | None = None,
    output_assets: bool = False,
    assets_kept_for: timedelta | None = None,
) -> Row[Any] | None:
    """Record the outcome (`status`: a final one) and the files, in one transaction; total_ms = created ->
    finished. None, and nothing written, when the run had ended already. `created_at`, when the caller knows it,
    saves reading it. `progress`: the last one the run reported, when the caller kept it (it is not written at every
    step). `output_assets`: each file also gets its Comfy API v2 asset (expiring `assets_kept_for` after the run's
    creation; None: never), in the same transaction."""
    created = created_at or _created_at(session, run_id)
    latest = {"progress": progress} if progress is not None else {}
    run = _update_unfinished(session, run_id, status=str(status), finished_at=finished_at,
                             total_ms=_ms(created, finished_at), applied=applied, error=error, exec_ms=exec_ms,
                             sql="webhook_due", **latest)
    if run is None:
        session.commit()  # nothing was written; not a rollback, which would expire the caller's loaded objects
        return None
    if artifacts:
        rows = [{"run_id": run_id, "node_id": a.node_id, "kind": a.kind, "filename": a.filename, "path": a.path,
                 "mime": a.mime, "size": a.size, "created_at": finished_at} for a in artifacts]
        if output_assets:
            ids = session.scalars(_INSERT_ARTIFACTS_RETURNING_ID, rows).all()
            crud_assets.add_output_assets(session, run_id=run_id, artifacts=list(zip(ids, artifacts, strict=True)),
                                          created_at=finished_at, expires_at=created + assets_kept_for
                                          if assets_kept_for is not None else None)
        else:
            session.execute(_INSERT_ARTIFACTS, rows)
    session.commit()
    return run


def finish_run(
    session: Session,
    *,
    run_id: str,
    status: str,
    finished_at: datetime,
    applied: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    exec_ms: float | None = None,
) -> Run:
    """Record the outcome; total_ms = created -> finished. A run that had ended is returned unchanged."""
    end_run(session, run_id=run_id, status=status, finished_at=finished_at, applied=applied, error=error,
            exec_ms=exec_ms)
    run = session.get(Run, run_id, populate_existing=True)
    assert run is not None  # end_run raised RunNotFoundError otherwise; runs are never deleted here
    return run


def requeue_run(session: Session, *, run_id: str, status: str, keep_attempts: bool = True) -> None:
    """Back to the queue (`status`: queued) after a lost engine; attempts stay counted (not after a clean shutdown
    cut the run short: `keep_attempts=False` gives its attempt back). Ignored if the run has ended."""
    _update_unfinished(
        session,
        run_id,
        status=str(status),  # plain text: a driver may adapt an enum member by its name
        worker=None,
        started_at=None,
        queue_ms=None,
        progress=None,
        sql=None if keep_attempts else "give_back_attempt",
        whole_row=False,
    )
    session.commit()


def record_webhook(session: Session, *, run_id: str, delivered: bool, error: str | None = None) -> None:
    """How the run's webhook delivery ended (after all its attempts)."""
    session.execute(update(_RUNS).where(_RUNS.c.id == run_id).values(
        webhook_status=WEBHOOK_DELIVERED if delivered else WEBHOOK_FAILED, webhook_error=error))
    session.commit()


def webhooks_due(session: Session) -> list[Run]:
    """Ended runs whose webhook was not delivered yet (the app stopped first), oldest first."""
    return list(session.scalars(select(Run).where(Run.webhook_status == WEBHOOK_PENDING)
                                .order_by(Run.finished_at, Run.id)))


def artifacts_of(session: Session, *, run_id: str) -> Sequence[Row[Any]]:
    """Their rows, in the order they were added."""
    return session.execute(_ARTIFACTS_OF, {"run_id": run_id}).all()


def artifacts_by_run(session: Session, *, run_ids: Sequence[str]) -> dict[str, list[Row[Any]]]:
    """The artifacts of several runs in one query (a history page): run id -> rows in the order they were added;
    runs without files are left out."""
    found: dict[str, list[Row[Any]]] = {}
    if run_ids:
        rows = session.execute(select(_ARTIFACTS).where(_ARTIFACTS.c.run_id.in_(run_ids)).order_by(_ARTIFACTS.c.id))
        for row in rows:
            found.setdefault(row.run_id, []).append(row)
    return found


def recent_exec_ms(session: Session, *, app_id: int, status: str, limit: int = 50) -> list[float]:
    """The execution times of the app's latest runs with `status` that recorded one, newest first (the planner's
    measured exec time)."""
    query = (select(Run.exec_ms).where(Run.app_id == app_id, Run.status == str(status), Run.exec_ms.is_not(None))
             .order_by(Run.finished_at.desc(), Run.id.desc()).limit(limit))
    return [float(ms) for ms in session.scalars(query)]
