"""The planner's measured exec time of an app (app/planner/history.py), from its runs in a real SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from app.planner.history import measured_exec
from db import crud_runs
from db.migrate import upgrade_to_head
from db.models import utcnow
from db.session import create_db_engine, make_session_factory, sqlite_url
from tests.db.factories import new_run, publish


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    url = sqlite_url(tmp_path)
    upgrade_to_head(url)
    engine = create_db_engine(url)
    with make_session_factory(engine)() as session:
        yield session
    engine.dispose()


def _ended(session: Session, version: object, status: str, exec_ms: float | None, minutes_ago: float) -> None:
    run = new_run(session, version)
    crud_runs.end_run(session, run_id=run.id, status=status, exec_ms=exec_ms,
                      finished_at=utcnow() - timedelta(minutes=minutes_ago))


def test_the_exec_time_is_measured_on_the_apps_succeeded_runs_only(session: Session) -> None:
    version, other = publish(session, "measured"), publish(session, "other")
    for i, ms in enumerate((1000, 2000, 3000, 4000, 10_000)):
        _ended(session, version, "succeeded", ms, minutes_ago=10 - i)
    _ended(session, version, "failed", 60_000, minutes_ago=1)  # a failure's time says nothing of a run's
    _ended(session, version, "cancelled", None, minutes_ago=1)
    _ended(session, other, "succeeded", 90_000, minutes_ago=1)
    measured = measured_exec(session, slug="measured")
    assert measured is not None
    assert (measured.runs, measured.p50_s, measured.p95_s) == (5, 3.0, 10.0)
    assert "5 succeeded run(s)" in measured.describe()


def test_only_the_latest_runs_count(session: Session) -> None:
    version = publish(session, "changed")
    for i in range(3):
        _ended(session, version, "succeeded", 9000, minutes_ago=60 + i)  # an older, slower version
    for i in range(4):
        _ended(session, version, "succeeded", 1000, minutes_ago=i)
    measured = measured_exec(session, slug="changed", limit=4)
    assert measured is not None and (measured.runs, measured.p95_s) == (4, 1.0)


def test_no_history_is_none(session: Session) -> None:
    version = publish(session, "fresh")
    new_run(session, version)  # queued, never ran
    assert measured_exec(session, slug="fresh") is None
    assert measured_exec(session, slug="nowhere") is None
