"""A submission: what the REST API, a form and the studio hand the run service, and its one trip to the database
(a worker thread), where the caller, the app version and the inputs are checked and the run is recorded before it
goes anywhere. What is wrong raises a domain error (app.errors) or InputProblems, and nothing is recorded."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth.keys import Caller, identify, require_runner
from app.errors import NotFound, Unavailable
from app.runs.inputs import InputSource, RunInputs
from app.runs.stored import encode, store_uploads
from app.runs.versions import Versions
from app.runs.webhooks import check_webhook_url
from app.settings import Settings
from db import crud_apps, crud_runs, crud_v2
from db.crud_apps import RunnableVersion
from db.models import Run, utcnow
from publisher import AppSpec
from runtimes.contract import RunStatus
from runtimes.inputs import InputProblems


@dataclass(frozen=True)
class AppRef:
    slug: str
    number: int | None = None  # None: the latest version


@dataclass(frozen=True)
class Prepared:
    """What a submission's `prepare` finds in the submission's own trip to the database."""

    caller: Caller
    version: RunnableVersion
    inputs: InputSource


@dataclass(frozen=True)
class Submission:
    app: AppRef | RunnableVersion | None  # a version already looked up (a multipart request, a re-run); None: prepare
    inputs: InputSource
    caller: Caller | None = None  # known (a form's visitor, the studio, a request identified already)...
    authorization: str | None = None  # ...or identified from this `Authorization` header in the same trip
    idempotency_key: str | None = None
    # ...or all three found first in the same trip (the Comfy API v2: a workflow's version and files); its errors
    # propagate, and nothing is recorded.
    prepare: Callable[[Session], Prepared] | None = None
    # None: an Idempotency-Key answers its first run for ever (the typed API). Set (the Comfy API v2: 24 h): the key is
    # looked up only when the run's insert finds it held, and a run older than this gives it up.
    key_lifetime: timedelta | None = None
    # The engine's extra_data for this run (RunRequest.extra_data): held in memory only, never recorded.
    extra_data: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Accepted:
    run: Run
    version: RunnableVersion
    spec: AppSpec
    created: bool  # False: an earlier run with the same Idempotency-Key


def find_runnable(session: Session, app: AppRef) -> RunnableVersion:
    """The app version to run, or NotFound saying what is missing."""
    version = crud_apps.find_runnable(session, slug=app.slug, number=app.number)
    if version is None:
        if crud_apps.get_app(session, slug=app.slug) is None:
            raise NotFound(f"No app '{app.slug}'. GET /api/apps lists the apps.")
        raise NotFound(f"App '{app.slug}' has no version {app.number}.")
    return version


def authorize(session: Session, app: AppRef | RunnableVersion, caller: Caller | None, authorization: str | None,
              engine_problem: str | None) -> tuple[Caller, RunnableVersion]:
    """Who submits, and the version they may run; Unauthorized, NotFound, or Unavailable when no engine can run
    anything."""
    who = caller if caller is not None else identify(session, authorization)
    version = app if isinstance(app, RunnableVersion) else find_runnable(session, app)
    require_runner(who, public=version.public)
    if engine_problem is not None:
        raise Unavailable(f"No engine can run this: {engine_problem}", retry_after=60)
    return who, version


# Raises when a run of this version with these values cannot run where it would go (a model file missing).
RunCheck = Callable[[RunnableVersion, AppSpec, dict[str, Any]], None]


class Recording:
    """The submission's database trip: checks, idempotency, the uploads stored, the run inserted."""

    def __init__(self, *, settings: Settings, versions: Versions, check_run: RunCheck | None = None) -> None:
        self.settings = settings
        self.versions = versions
        self.check_run = check_run

    def record(self, session: Session, sub: Submission, engine_problem: str | None) -> Accepted:
        if sub.prepare is not None:
            found = sub.prepare(session)
            sub = replace(sub, app=found.version, caller=found.caller, inputs=found.inputs, prepare=None)
        assert sub.app is not None, "a submission names its app or prepares it"
        caller, version = authorize(session, sub.app, sub.caller, sub.authorization, engine_problem)
        self.versions.remember(version)
        spec = self.versions.spec(session, version.version_id)
        inputs = sub.inputs.parse(spec, self.settings.image_limits)
        self._check_webhook(inputs)
        scope = None
        if sub.idempotency_key:
            # Anonymous callers share no identity: their Idempotency-Key only matches the same inputs.
            who = caller.scope if caller.key_id is not None else f"public:{_digest(inputs)}"
            scope = f"{version.app_id}:{who}:{sub.idempotency_key}"
            if sub.key_lifetime is None and (existing := crud_runs.find_run_by_scope(session, scope=scope)):
                return Accepted(existing, version, spec, created=False)
        if self.check_run is not None:
            self.check_run(version, spec, inputs.values)
        run_id = uuid.uuid4().hex
        stored = store_uploads(self.settings.uploads_dir, run_id, inputs.uploads)

        def insert() -> Run:
            return crud_runs.create_run(session, run_id=run_id, status=RunStatus.QUEUED, app_id=version.app_id,
                                        version_id=version.version_id, inputs=encode(inputs.values, stored),
                                        webhook_url=inputs.webhook, idempotency_scope=scope, api_key_id=caller.key_id)

        try:
            run = insert()
        except IntegrityError:  # the key is held: by its first run (maybe submitted at this same moment)...
            if scope is None:
                raise
            if sub.key_lifetime is not None and crud_v2.release_scope(session, scope=scope,
                                                                      created_before=utcnow() - sub.key_lifetime):
                run = insert()  # ...or by one past the key's lifetime, released
            else:
                existing = crud_runs.find_run_by_scope(session, scope=scope)
                if existing is None:
                    raise
                return Accepted(existing, version, spec, created=False)
        return Accepted(run, version, spec, created=True)

    def _check_webhook(self, inputs: RunInputs) -> None:
        if inputs.webhook:
            try:
                check_webhook_url(inputs.webhook, allow_private=self.settings.allow_private_webhooks)
            except ValueError as exc:
                raise InputProblems([{"input": "webhook", "message": str(exc)}]) from None


def _digest(inputs: RunInputs) -> str:
    digest = hashlib.sha256(json.dumps(inputs.values, sort_keys=True, default=str).encode())
    for name in sorted(inputs.uploads):
        digest.update(name.encode() + inputs.uploads[name][1])
    return digest.hexdigest()[:32]
