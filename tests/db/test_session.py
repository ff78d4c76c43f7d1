from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from db import crud_runs
from db.migrate import upgrade_to_head
from db.models import App
from db.session import create_db_engine, make_session_factory, sqlite_url
from tests.db.factories import publish


def test_sqlite_url_points_into_the_data_dir(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    assert url == f"sqlite:///{tmp_path}/publisher.db"
    upgrade_to_head(url)
    assert (tmp_path / "publisher.db").is_file()


def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    engine = create_db_engine(sqlite_url(tmp_path))
    try:
        # Two connections at once: the pragmas are set on every new connection, not just the first.
        with engine.connect() as first, engine.connect() as second:
            for conn in (first, second):
                assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
                assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
                assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 5000
    finally:
        engine.dispose()


def test_sqlite_writer_commits_while_a_reader_is_open(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    upgrade_to_head(url)
    engine = create_db_engine(url)
    try:
        with engine.connect() as writer, engine.connect() as reader:
            with Session(writer) as session:
                publish(session, slug="first")
            # A read transaction in progress (a status poll, the UI listing runs).
            reader.exec_driver_sql("BEGIN")
            assert reader.execute(text("SELECT count(*) FROM apps")).scalar() == 1
            # With a rollback journal the reader's lock would make this commit wait, then fail "database is locked".
            writer.exec_driver_sql("PRAGMA busy_timeout=100")
            writer.commit()  # ends the autobegun transaction, so the session below commits its own
            with Session(writer) as session:
                publish(session, slug="second")
            assert reader.execute(text("SELECT count(*) FROM apps")).scalar() == 1  # its snapshot
            reader.rollback()
            assert reader.execute(text("SELECT count(*) FROM apps")).scalar() == 2
    finally:
        engine.dispose()


def test_foreign_keys_are_enforced(session: Session) -> None:
    with pytest.raises(IntegrityError):
        crud_runs.create_run(session, run_id="a" * 32, status="queued", app_id=999, version_id=999, inputs={})


def test_datetimes_round_trip_as_aware_utc(session_factory: sessionmaker[Session]) -> None:
    plus_two = timezone(timedelta(hours=2))
    with session_factory() as session:
        version = publish(session)
        app = session.get(App, version.app_id)
        assert app is not None
        app.deleted_at = datetime(2026, 5, 1, 14, 30, 15, 123456, tzinfo=plus_two)
        session.commit()
    with session_factory() as session:
        stored = session.scalar(select(App.deleted_at))
        created = session.scalar(select(App.created_at))
    assert stored is not None and created is not None
    assert stored.tzinfo is UTC and created.tzinfo is UTC
    assert stored == datetime(2026, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)


def test_naive_datetimes_are_refused(session: Session) -> None:
    version = publish(session)
    app = session.get(App, version.app_id)
    assert app is not None
    app.deleted_at = datetime(2026, 5, 1, 12, 0)
    with pytest.raises(StatementError, match="naive datetime"):
        session.commit()


def test_objects_stay_readable_after_commit_and_close(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    with factory() as session:
        version = publish(session, slug="after-close", spec={"k": [1, 2]})
    # A route serializes what a CRUD function returned after its session is gone.
    assert (version.number, version.spec) == (1, {"k": [1, 2]})
