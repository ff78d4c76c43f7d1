"""The tables: published apps and their versions, runs with their artifacts, API keys, deployments.

Every timestamp is a timezone-aware UTC datetime in Python, whatever the database keeps.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Explicit constraint names: identical on SQLite and PostgreSQL, so later migrations can drop/alter them by name.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """DateTime(timezone=True) that only accepts aware datetimes and always returns aware UTC ones.

    SQLite has no time zone type: without this, values read back would be naive.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware one")
        value = value.astimezone(UTC)
        # SQLite stores the text as given: drop the offset so every row sorts and compares as plain UTC text.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# none_as_null: Python None is SQL NULL (queryable with IS NULL), not the JSON text 'null'.
NullableJSON = JSON(none_as_null=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class App(Base):
    __tablename__ = "apps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    public: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The server's own app of ad-hoc workflows (the Comfy API v2's POST /api/v2/jobs): its runs are ordinary runs,
    # but it is no published app (never listed, never served as a form).
    internal: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Set when unpublished: the app stops answering but its runs stay; publishing the slug again clears it.
    deleted_at: Mapped[datetime | None] = mapped_column()


class AppVersion(Base):
    __tablename__ = "app_versions"
    __table_args__ = (UniqueConstraint("app_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column()  # the AppSpec as a dict
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), index=True)  # the token's first characters, for lists
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the token; never the token
    admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # May run any API-format workflow on the engines (the Comfy API v2's POST /api/v2/jobs); admin keys always may.
    workflows: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()


class Run(Base):
    __tablename__ = "runs"
    # FIFO reload of queued runs at start: WHERE status = 'queued' ORDER BY created_at.
    __table_args__ = (Index("ix_runs_status_created_at", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # uuid4 hex, also the engine's prompt_id
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("app_versions.id"))
    # A word of the run contract (runtimes.contract.RunStatus), as the app writes it; a run has ended when it has
    # a finished_at.
    status: Mapped[str] = mapped_column(String(16), index=True)
    inputs: Mapped[dict[str, Any]] = mapped_column()  # validated values as submitted; uploads by path
    applied: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)  # values as applied, seed included
    # "<app_id>:<api_key_id or public>:<Idempotency-Key>": unique, so a replayed request finds the first run.
    idempotency_scope: Mapped[str | None] = mapped_column(String(300), unique=True)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    webhook_url: Mapped[str | None] = mapped_column(Text)
    # Set with the run's end when it has a webhook: pending (due; delivered at start-up if the app stopped first),
    # then delivered or failed (with why, in webhook_error). None: no webhook.
    webhook_status: Mapped[str | None] = mapped_column(String(16), index=True)
    webhook_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    queue_ms: Mapped[float | None] = mapped_column(Float)
    exec_ms: Mapped[float | None] = mapped_column(Float)
    total_ms: Mapped[float | None] = mapped_column(Float)
    worker: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    progress: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)  # {node, value, max}
    # {type, message, node_id, node_type, input, details}
    error: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)
    # When retention (--keep-outputs / --keep-inputs) removed its files: {"outputs": iso time, "inputs": iso time}.
    files_removed: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)


class Artifact(Base):
    __tablename__ = "artifacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    node_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # image | video | audio | file
    filename: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(1024))  # relative to the storage root: "outputs/<run_id>/<file>"
    mime: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)  # bytes; videos can pass the 2 GiB of a 32-bit INTEGER
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Asset(Base):
    """A file known to the Comfy API v2: an upload (its bytes in a content-addressed blob, shared by every asset of
    the same hash) or a run's output (its artifact's file)."""

    __tablename__ = "assets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # a UUID, as the v2 contract says
    hash: Mapped[str | None] = mapped_column(String(80), index=True)  # "blake3:<hex>"; None until computed (outputs)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(100))
    file_path: Mapped[str | None] = mapped_column(String(255), index=True)  # the name the client gave it
    path: Mapped[str] = mapped_column(String(1024))  # relative to the data dir: "assets/ab/<hex>", "outputs/..."
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"), index=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    artifact_id: Mapped[int | None] = mapped_column(ForeignKey("artifacts.id", ondelete="CASCADE"), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(index=True)


class DeploymentStatus(StrEnum):
    DEPLOYING = "deploying"
    LIVE = "live"
    FAILED = "failed"
    STOPPED = "stopped"


class Deployment(Base):
    """One deploy of an app version to a serverless provider (Modal, RunPod). Never holds a key or token."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("app_versions.id", ondelete="SET NULL"))
    provider: Mapped[str] = mapped_column(String(32))
    settings: Mapped[dict[str, Any]] = mapped_column()
    url: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32))  # DeploymentStatus
    log: Mapped[str] = mapped_column(Text, default="", server_default="")
    app_name: Mapped[str | None] = mapped_column(String(64))  # the app's name on the provider
    error: Mapped[str | None] = mapped_column(Text)
    # The app's runs of this version go to this deployment (at most one per app serves).
    serving: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
