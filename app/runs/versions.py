"""What runs need of app versions, read once each: versions are immutable, so a version's parsed spec, its
number and its app's slug never change once written."""

from __future__ import annotations

from sqlalchemy.orm import Session

from db import crud_apps
from db.crud_apps import RunnableVersion
from db.models import App, AppVersion
from publisher import AppSpec

_SPEC_CACHE_SIZE = 256


class Versions:
    def __init__(self) -> None:
        self._specs: dict[int, AppSpec] = {}
        self._slugs: dict[int, str] = {}
        self._numbers: dict[int, int] = {}

    def spec(self, session: Session, version_id: int) -> AppSpec:
        """The version's spec, read and parsed once (not at every submission)."""
        spec = self._specs.get(version_id)
        if spec is None:
            stored = crud_apps.version_spec(session, version_id=version_id)
            if stored is None:
                raise LookupError(f"no app version with id {version_id}")
            if len(self._specs) >= _SPEC_CACHE_SIZE:
                self._specs.clear()
            spec = self._specs[version_id] = AppSpec.from_dict(stored)
        return spec

    def remember(self, version: RunnableVersion) -> None:
        """Known from a lookup already: describing this version's runs later needs no query."""
        self._slugs[version.app_id], self._numbers[version.version_id] = version.slug, version.number

    def slug(self, session: Session, app_id: int) -> str:
        if app_id not in self._slugs:
            app = session.get(App, app_id)
            self._slugs[app_id] = app.slug if app else "?"
        return self._slugs[app_id]

    def number(self, session: Session, version_id: int) -> int:
        if version_id not in self._numbers:
            version = session.get(AppVersion, version_id)
            self._numbers[version_id] = version.number if version else 0
        return self._numbers[version_id]
