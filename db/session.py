"""Engines and sessions: SQLite in the data dir by default, any PostgreSQL (postgresql+psycopg://) URL too."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

DB_FILENAME = "publisher.db"


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / DB_FILENAME).as_posix()}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL: readers (status polls, the UI) never block the writer recording run updates.
        cursor.execute("PRAGMA journal_mode=WAL")
        # SQLite ignores foreign keys unless asked, per connection.
        cursor.execute("PRAGMA foreign_keys=ON")
        # Wait for a concurrent writer instead of failing at once with "database is locked".
        cursor.execute("PRAGMA busy_timeout=5000")
        # Safe with WAL (no corruption on power loss, at worst the last commits are lost) and far fewer fsyncs.
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def create_db_engine(url: str) -> Engine:
    if make_url(url).get_backend_name() == "sqlite":
        # Sessions are used from worker threads (asyncio.to_thread); each connection is still used by one at a time.
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        # A server may close idle connections (restart, failover): test each one as it leaves the pool.
        engine = create_engine(url, pool_pre_ping=True)
    if os.environ.get(STRICT_LOOP_ENV) == "1":
        forbid_checkouts_on_event_loop(engine)
    return engine


# Tests set this: a checkout on the event loop's thread then raises instead of passing unnoticed.
STRICT_LOOP_ENV = "COMFY_PUBLISHER_STRICT_DB_LOOP"


class DatabaseOnEventLoopError(RuntimeError):
    pass


def forbid_checkouts_on_event_loop(engine: Engine) -> None:
    """Database work belongs in worker threads. A pool checkout can wait (up to the pool timeout) for a
    connection that a finished request gives back only when its teardown runs on the event loop: waiting on the
    loop for it blocks every request and deadlocks until the timeout."""

    def on_checkout(*_: Any) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # a worker thread (or no loop at all): fine
        raise DatabaseOnEventLoopError("a database connection was checked out on the event loop's thread; "
                                       "run the database work in a worker thread (asyncio.to_thread)")

    event.listen(engine, "checkout", on_checkout)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # Objects stay readable after commit, e.g. when a route serializes what a CRUD function returned.
    return sessionmaker(bind=engine, expire_on_commit=False)
