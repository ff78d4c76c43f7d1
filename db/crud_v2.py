"""The Comfy API v2's own records: the server's internal app of ad-hoc workflows (each distinct workflow a version
of it, marked with its graph's hash) and the expiry of a job's Idempotency-Key. Write functions commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import App, AppVersion, Run, utcnow

# No published app can take it: publishing accepts only [a-z0-9][a-z0-9-]*.
INTERNAL_SLUG = "_workflows"
GRAPH_HASH = "graph_hash"  # the key of a version's spec that holds its graph's hash


_APPS = App.__table__
# A v2 request at an app's base URL reads this (every poll there): the published app's id and whether it is public.
_APP_ACCESS = select(_APPS.c.id, _APPS.c.public).where(_APPS.c.slug == bindparam("slug"), _APPS.c.internal.is_(False),
                                                       _APPS.c.deleted_at.is_(None))


def app_access(session: Session, *, slug: str) -> Row[Any] | None:
    """A published app's (id, public), as crud_apps.get_app finds it, in one light query (no ORM object)."""
    return session.execute(_APP_ACCESS, {"slug": slug}).one_or_none()


def internal_app(session: Session) -> App:
    """The server's internal app, made on first use."""
    found = session.scalar(select(App).where(App.slug == INTERNAL_SLUG))
    if found is not None:
        return found
    now = utcnow()
    app = App(slug=INTERNAL_SLUG, name="Workflows (Comfy API v2)", description="ad-hoc workflows of POST /api/v2/jobs",
              public=False, internal=True, created_at=now, updated_at=now)
    session.add(app)
    try:
        session.commit()
    except IntegrityError:  # made by a concurrent request: theirs stands
        session.rollback()
        return session.scalars(select(App).where(App.slug == INTERNAL_SLUG)).one()
    return app


def add_graph_version(session: Session, *, app_id: int, graph_hash: str, spec: dict[str, Any]) -> AppVersion:
    """A new version (number max + 1) of the internal app, its spec marked with the graph's hash."""
    for _ in range(5):
        last = session.scalar(select(func.max(AppVersion.number)).where(AppVersion.app_id == app_id))
        version = AppVersion(app_id=app_id, number=(last or 0) + 1, spec={**spec, GRAPH_HASH: graph_hash},
                             created_at=utcnow())
        session.add(version)
        try:
            session.commit()
            return version
        except IntegrityError:  # the same number taken by a concurrent submission: the next one
            session.rollback()
    raise RuntimeError("could not record the workflow's version: too many concurrent submissions")


_SCOPE_HOLDER = select(Run.id, Run.created_at).where(Run.idempotency_scope == bindparam("scope"))


def release_scope(session: Session, *, scope: str, created_before: datetime) -> bool:
    """Frees an Idempotency-Key scope held by a run created before `created_before` (the key expired); True when
    the scope is free now."""
    found = session.execute(_SCOPE_HOLDER, {"scope": scope}).one_or_none()  # light: every v2 submission reads it
    if found is None:
        return True
    if found.created_at >= created_before:
        return False
    session.execute(update(Run).where(Run.id == found.id).values(idempotency_scope=None))
    session.commit()
    return True
