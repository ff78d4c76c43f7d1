"""Published apps and their numbered, immutable versions.

Write functions commit: each is one unit of work (as in full-stack-fastapi-template's crud.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import App, AppVersion, utcnow


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


def get_app(session: Session, *, slug: str, include_deleted: bool = False) -> App | None:
    query = select(App).where(App.slug == slug)
    if not include_deleted:
        query = query.where(App.deleted_at.is_(None))
    return session.scalar(query)


def list_apps(session: Session) -> list[App]:
    """Published (not unpublished) apps, by slug."""
    return list(session.scalars(select(App).where(App.deleted_at.is_(None)).order_by(App.slug)))


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
