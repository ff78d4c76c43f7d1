from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from db import crud_apps, crud_runs
from db.migrate import alembic_config, upgrade_to_head
from db.models import Base
from db.session import create_db_engine, make_session_factory
from tests.db.factories import publish

TABLES = {"apps", "app_versions", "runs", "artifacts", "api_keys", "deployments", "assets"}


def test_upgrade_from_empty_creates_exactly_the_models(db_url: str) -> None:
    upgrade_to_head(db_url)
    engine = create_db_engine(db_url)
    try:
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == TABLES | {"alembic_version"}
            opts = {
                "compare_type": True,
                # Alembic misreads SQLite's reflected '' defaults as changes; PostgreSQL compares them reliably.
                "compare_server_default": conn.dialect.name == "postgresql",
            }
            diff = compare_metadata(MigrationContext.configure(conn, opts=opts), Base.metadata)
            head = ScriptDirectory.from_config(alembic_config()).get_current_head()
            assert MigrationContext.configure(conn).get_current_revision() == head == "0004"
    finally:
        engine.dispose()
    assert diff == []


def test_constraint_names_come_from_the_naming_convention(migrated_url: str) -> None:
    engine = create_db_engine(migrated_url)
    try:
        with engine.connect() as conn:
            insp = inspect(conn)
            assert {uq["name"] for uq in insp.get_unique_constraints("runs")} == {"uq_runs_idempotency_scope"}
            assert {uq["name"] for uq in insp.get_unique_constraints("app_versions")} == {
                "uq_app_versions_app_id_number"
            }
            assert {fk["name"] for fk in insp.get_foreign_keys("runs")} == {
                "fk_runs_app_id_apps",
                "fk_runs_version_id_app_versions",
                "fk_runs_api_key_id_api_keys",
            }
            assert {ix["name"] for ix in insp.get_indexes("runs")} >= {
                "ix_runs_app_id",
                "ix_runs_status",
                "ix_runs_created_at",
                "ix_runs_status_created_at",
                "ix_runs_webhook_status",
            }
    finally:
        engine.dispose()


def test_upgrade_again_keeps_data_and_version(migrated_url: str) -> None:
    engine = create_db_engine(migrated_url)
    try:
        with make_session_factory(engine)() as session:
            publish(session, slug="kept")
        upgrade_to_head(migrated_url)
        upgrade_to_head(migrated_url)
        with make_session_factory(engine)() as session:
            assert session.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == ["0004"]
            app = crud_apps.get_app(session, slug="kept")
            assert app is not None
            assert [v.number for v in crud_apps.list_versions(session, app_id=app.id)] == [1]
    finally:
        engine.dispose()


def test_downgrade_to_base_then_upgrade_again(migrated_url: str) -> None:
    engine = create_db_engine(migrated_url)
    try:
        with engine.connect() as conn:
            config = alembic_config(migrated_url)
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
            conn.commit()
            assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    upgrade_to_head(migrated_url)
    engine = create_db_engine(migrated_url)
    try:
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) >= TABLES
    finally:
        engine.dispose()


def test_runs_recorded_before_0003_keep_their_data(db_url: str) -> None:
    engine = create_db_engine(db_url)
    try:
        with engine.connect() as conn:
            config = alembic_config(db_url)
            config.attributes["connection"] = conn
            command.upgrade(config, "0002")
            conn.execute(text("INSERT INTO apps (id, slug, name, description, public, created_at, updated_at) "
                              "VALUES (1, 'old', 'Old', '', false, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
            conn.execute(text("INSERT INTO app_versions (id, app_id, number, spec, created_at) "
                              "VALUES (1, 1, 1, '{}', '2026-01-01 00:00:00')"))
            conn.execute(text("INSERT INTO runs (id, app_id, version_id, status, inputs, webhook_url, created_at, "
                              "attempts) VALUES ('r1', 1, 1, 'succeeded', '{}', 'https://h/k', "
                              "'2026-01-01 00:00:00', 1)"))
            conn.commit()
    finally:
        engine.dispose()
    upgrade_to_head(db_url)
    engine = create_db_engine(db_url)
    try:
        with make_session_factory(engine)() as session:
            run = crud_runs.get_run(session, run_id="r1")
            assert run is not None
            assert (run.status, run.webhook_url, run.attempts) == ("succeeded", "https://h/k", 1)
            # Not due: it ended before deliveries were tracked (its webhook went out then, or was lost then).
            assert (run.webhook_status, run.webhook_error) == (None, None)
            assert crud_runs.webhooks_due(session) == []
    finally:
        engine.dispose()
