"""Finding published apps and their versions, or the NotFound that says what is missing."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.auth.keys import Caller, require_runner
from app.errors import NotFound
from db import crud_apps
from db.models import App, AppVersion


def find_app(session: Session, slug: str) -> App:
    app = crud_apps.get_app(session, slug=slug)
    if app is None:
        raise NotFound(f"No app '{slug}'. GET /api/apps lists the apps.")
    return app


def find_version(session: Session, app: App, number: int | None = None) -> AppVersion:
    version = crud_apps.get_version(session, app_id=app.id, number=number)
    if version is None:
        raise NotFound(f"App '{app.slug}' has no version {number}.")
    return version


def visible_app(session: Session, caller: Caller, slug: str) -> App:
    """Private apps are described to key holders only (as they are run by them only)."""
    app = find_app(session, slug)
    require_runner(caller, public=app.public)
    return app
