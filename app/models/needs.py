"""Which model files a workflow file or a published app needs (with their sources, given ones winning), and what
the engines' models folder holds. Shared by the command line, the API and the studio."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.errors import NotFound, Unprocessable
from db import crud_apps
from publisher.appspec import AppSpec
from publisher.model_needs import declared_hashes, file_model_refs
from publisher.model_sources import declared_sources, sourced_models
from publisher.models import with_sources
from publisher.workflow import WorkflowFormatError
from runtimes.models.needs import NeededModel, needed_models


def needs_of_workflow(raw: Any, models_dir: Path, given: Mapping[str, str] | None = None) -> list[NeededModel]:
    """The files a workflow file (API or UI format) needs, placed without an engine (the loader table and the
    file's properties.models); `given` sources ("file" or "folder/file" -> hf://...) win over the file's own."""
    try:
        refs = file_model_refs(raw)
    except (WorkflowFormatError, ValueError) as exc:
        raise Unprocessable(f"The workflow cannot be read: {exc}") from exc
    problems: list[str] = []
    declared = declared_sources(raw) if isinstance(raw, Mapping) else {}
    refs = sourced_models(refs, declared, dict(given or {}), problems)
    if problems:
        raise Unprocessable("Some model sources do not fit this workflow.", problems)
    return needed_models(refs, models_dir, declared_hashes(raw))


def needs_of_spec(spec: Mapping[str, Any], models_dir: Path,
                  given: Mapping[str, str] | None = None) -> list[NeededModel]:
    """The files a published version needs, with the sources it was published with (`given` ones win)."""
    problems: list[str] = []
    refs = with_sources(list(AppSpec.from_dict(spec).models), dict(given or {}), problems)
    if problems:
        raise Unprocessable("Some model sources do not fit this app.", problems)
    return needed_models(refs, models_dir)


def needs_of_app(session: Session, slug: str, models_dir: Path,
                 given: Mapping[str, str] | None = None) -> list[NeededModel]:
    """The files the latest version of a published app needs."""
    app = crud_apps.get_app(session, slug=slug)
    version = crud_apps.get_version(session, app_id=app.id) if app is not None else None
    if version is None:
        raise NotFound(f"No app '{slug}' (see `models list` or GET /api/apps).")
    return needs_of_spec(version.spec, models_dir, given)


def needs_of_all_apps(session: Session, models_dir: Path) -> dict[str, list[NeededModel]]:
    """slug -> the files its latest version needs, for every published app."""
    found = {}
    for app in crud_apps.list_apps(session):
        version = crud_apps.get_version(session, app_id=app.id)
        if version is not None:
            found[app.slug] = needs_of_spec(version.spec, models_dir)
    return found


def parse_sources(items: list[str]) -> dict[str, str]:
    """`FILE=hf://...` items (the command line's --source) as model_sources; ValueError names a malformed one."""
    sources = {}
    for item in items:
        key, equals, source = item.partition("=")
        if not equals or not key.strip() or not source.strip():
            raise ValueError(f"--source {item!r}: write FILE=hf://owner/repo/path/to/file[@revision], e.g. "
                             "model.safetensors=hf://owner/repo/model.safetensors")
        sources[key.strip()] = source.strip()
    return sources
