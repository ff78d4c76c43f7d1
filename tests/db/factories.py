"""Small builders for test data, through the public CRUD functions."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from db import crud_apps, crud_runs
from db.models import AppVersion, Run


def spec(title: str = "txt2img") -> dict[str, Any]:
    return {"title": title, "inputs": [{"name": "prompt", "node_id": "6", "input": "text"}], "outputs": ["9"]}


def publish(session: Session, slug: str = "demo", **overrides: Any) -> AppVersion:
    fields: dict[str, Any] = {"name": slug.title(), "description": "", "public": False, "spec": spec()}
    fields.update(overrides)
    return crud_apps.publish_version(session, slug=slug, **fields)


def new_run(session: Session, version: AppVersion, **overrides: Any) -> Run:
    fields: dict[str, Any] = {"run_id": uuid.uuid4().hex, "status": "queued", "inputs": {"prompt": "a cat"}}
    fields.update(overrides)
    return crud_runs.create_run(session, app_id=version.app_id, version_id=version.id, **fields)
