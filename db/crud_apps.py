"""Published apps and their numbered, immutable versions.

Write functions commit: each is one unit of work (as in full-stack-fastapi-template's crud.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db import crud_deployments
from db.models import App, AppVersion, Deployment, utcnow


def publish_version(
    session: Session, *, slug: str, name: str, description: str, public: bool, spec: dict[str, Any]
) -> AppVersion:
    """Create the app (or revive an unpublished one) and add version previous max + 1 with `spec`."""
    now = utcnow()
    app = get_app(session, slug=slug, include_deleted=True)
    if app is None:
        app = App(slug=slug, name=name, description=description, public=public, created_at=now, updated_at=now)
        session.add(app)
        session.flush()  # assigns app.id
    else:
        app.name, app.description, app.public = name, description, public
        app.deleted_at = None
        app.updated_at = now
    # Numbers continue after an unpublish: a revived app never reuses a number its old runs point to.
    # Two concurrent publishes of one slug get the same number: uq_app_versions_app_id_number refuses the second.
    last = session.scalar(select(func.max(AppVersion.number)).where(AppVersion.app_id == app.id))
    version = AppVersion(app_id=app.id, number=(last or 0) + 1, spec=spec, created_at=now)
    session.add(version)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()  # leave the session usable for the caller's retry
        raise
    return version


def get_app(session: Session, *, slug: str, include_deleted: bool = False, include_internal: bool = False
            ) -> App | None:
    """A published app; the server's internal one (db.crud_v2) only with `include_internal` (run history)."""
    query = select(App).where(App.slug == slug)
    if not include_internal:
        query = query.where(App.internal.is_(False))
    if not include_deleted:
        query = query.where(App.deleted_at.is_(None))
    return session.scalar(query)


def list_apps(session: Session) -> list[App]:
    """Published (not unpublished) apps, by slug."""
    return list(session.scalars(select(App).where(App.deleted_at.is_(None), App.internal.is_(False))
                                .order_by(App.slug)))


def get_version(session: Session, *, app_id: int, number: int | None = None) -> AppVersion | None:
    """Version `number` of the app, or its latest when number is None.

    Does not look at the app's deleted_at: callers find the app first (get_app hides unpublished ones), and
    runs of an unpublished app can still read the version they were made with.
    """
    query = select(AppVersion).where(AppVersion.app_id == app_id)
    if number is None:
        query = query.order_by(AppVersion.number.desc()).limit(1)
    else:
        query = query.where(AppVersion.number == number)
    return session.scalar(query)


@dataclass(frozen=True)
class RunnableVersion:
    """An app version as a run of it needs it: who may run it, and where its runs go."""

    app_id: int
    slug: str
    public: bool
    version_id: int
    number: int
    # The live deployment the app's runs are switched to (the version it serves, its URL and provider app
    # name); None, or serving another version: the local engines run it.
    deployment_version_id: int | None = None
    deployment_url: str | None = None
    deployment_app_name: str | None = None
    deployment_provider: str | None = None  # "modal" | "runpod": which runner takes the runs


_APPS, _VERSIONS, _DEPLOYMENTS = App.__table__, AppVersion.__table__, Deployment.__table__
# Every submission runs one of these: one Core query each, built once (the ORM and a statement built per call
# cost several times as much). No spec: it is immutable per version, and the caller keeps it parsed.
_RUNNABLE = (
    select(_APPS.c.id.label("app_id"), _APPS.c.slug, _APPS.c.public, _VERSIONS.c.id.label("version_id"),
           _VERSIONS.c.number, _DEPLOYMENTS.c.version_id.label("deployment_version_id"),
           _DEPLOYMENTS.c.url.label("deployment_url"), _DEPLOYMENTS.c.app_name.label("deployment_app_name"),
           _DEPLOYMENTS.c.provider.label("deployment_provider"))
    .join_from(_APPS, _VERSIONS, _VERSIONS.c.app_id == _APPS.c.id)
    .outerjoin(_DEPLOYMENTS, and_(_DEPLOYMENTS.c.app_id == _APPS.c.id, crud_deployments.SERVING))
)
_PUBLISHED = _RUNNABLE.where(_APPS.c.slug == bindparam("slug"), _APPS.c.deleted_at.is_(None),
                             _APPS.c.internal.is_(False))
_RUNNABLE_LATEST = _PUBLISHED.order_by(_VERSIONS.c.number.desc()).limit(1)
_RUNNABLE_NUMBER = _PUBLISHED.where(_VERSIONS.c.number == bindparam("number")).limit(1)
_RUNNABLE_BY_ID = _RUNNABLE.where(_VERSIONS.c.id == bindparam("version_id")).limit(1)


def find_runnable(session: Session, *, slug: str, number: int | None = None) -> RunnableVersion | None:
    """Version `number` of the published app `slug` (its latest when None); None when either is missing."""
    if number is None:
        return _runnable(session, _RUNNABLE_LATEST, {"slug": slug})
    return _runnable(session, _RUNNABLE_NUMBER, {"slug": slug, "number": number})


def runnable_by_id(session: Session, *, version_id: int) -> RunnableVersion | None:
    """The version with this id, unpublished or not: runs already accepted still run (after a restart)."""
    return _runnable(session, _RUNNABLE_BY_ID, {"version_id": version_id})


def _runnable(session: Session, statement: Select[Any], params: dict[str, Any]) -> RunnableVersion | None:
    row = session.execute(statement, params).first()
    return RunnableVersion(**row._mapping) if row is not None else None


def version_spec(session: Session, *, version_id: int) -> dict[str, Any] | None:
    return session.scalar(select(AppVersion.spec).where(AppVersion.id == version_id))


def list_versions(session: Session, *, app_id: int) -> list[AppVersion]:
    """Oldest first."""
    return list(session.scalars(select(AppVersion).where(AppVersion.app_id == app_id).order_by(AppVersion.number)))


def unpublish(session: Session, *, app_id: int) -> None:
    """Soft delete: the app and its versions stop answering, runs and versions stay. No-op if already done."""
    app = session.get(App, app_id)
    if app is None or app.deleted_at is not None:
        return
    app.deleted_at = app.updated_at = utcnow()
    session.commit()
