"""What retention (--keep-outputs / --keep-inputs) reads and writes: ended runs old enough to lose their files, which
runs still hold an uploaded blob, and the mark a run keeps of what was removed (`runs.files_removed`). Write
functions commit."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import String, cast, or_, select, update
from sqlalchemy.orm import Session

from db.models import Run

OUTPUTS, INPUTS = "outputs", "inputs"  # the keys of runs.files_removed
_UPLOAD_MARKS = ('%"blob"%', '%"upload"%')  # how a run's inputs JSON holds an uploaded file (app.runs.stored)


def _text(column: Any) -> Any:
    return cast(column, String)


def _not_marked(what: str) -> Any:
    return or_(Run.files_removed.is_(None), ~_text(Run.files_removed).like(f'%"{what}"%'))


def ended_runs_before(session: Session, *, what: str, before: datetime, limit: int = 200) -> list[Run]:
    """Ended runs created before `before` whose `what` (OUTPUTS or INPUTS) retention has not removed yet, oldest
    first. For INPUTS, only runs with an uploaded file. A queued or running run is never among them."""
    query = select(Run).where(Run.finished_at.is_not(None), Run.created_at < before, _not_marked(what))
    if what == INPUTS:
        query = query.where(or_(*(_text(Run.inputs).like(mark) for mark in _UPLOAD_MARKS)))
    return list(session.scalars(query.order_by(Run.created_at).limit(limit)))


def runs_holding(session: Session, *, needle: str, not_ids: Collection[str] = ()) -> bool:
    """Whether a run other than `not_ids` still keeps an uploaded file whose reference holds `needle` (a blob's
    hash): a queued or running run, or an ended one whose inputs retention has not removed."""
    query = select(Run.id).where(_text(Run.inputs).like(f"%{needle}%"), _not_marked(INPUTS))
    if not_ids:
        query = query.where(Run.id.not_in(list(not_ids)))
    return session.scalar(query.limit(1)) is not None


def blobs_held(session: Session, *, before: datetime | None) -> set[str]:
    """The blob hashes that runs still keep as inputs: queued or running runs, and ended runs created at or after
    `before` (all ended runs whose inputs were not removed, when `before` is None). One pass over those runs."""
    query = select(Run.inputs).where(_not_marked(INPUTS), _text(Run.inputs).like(_UPLOAD_MARKS[0]))
    if before is not None:
        query = query.where(or_(Run.finished_at.is_(None), Run.created_at >= before))
    held: set[str] = set()
    for inputs in session.scalars(query.execution_options(yield_per=500)):
        held.update(value["blob"] for value in (inputs or {}).values()
                    if isinstance(value, dict) and isinstance(value.get("blob"), str))
    return held


def mark_removed(session: Session, *, run_ids: Collection[str], what: str, when: datetime) -> None:
    """Record on each run that its `what` files were removed at `when` (an ISO time in runs.files_removed)."""
    for run in session.scalars(select(Run).where(Run.id.in_(list(run_ids)))):
        marks = dict(run.files_removed or {})
        marks[what] = when.isoformat()
        session.execute(update(Run).where(Run.id == run.id).values(files_removed=marks))
    session.commit()
