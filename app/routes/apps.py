"""Publishing: create an app or a new version of it, list, read, unpublish."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth import Caller, require_runner
from app.deps import AdminDep, CallerDep, ServicesDep
from app.openapi import add_app_paths, base_schema
from app.schemas import AppOut, PublishRequest, VersionOut
from db import crud_apps
from db.models import App, AppVersion
from publisher import AppSpec, AppSpecError, WorkflowFormatError, build_app_spec, check_graph, load_workflow
from publisher.validate import GraphValidationError

router = APIRouter(prefix="/api/apps", tags=["apps"])
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def slug_of(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63]


def find_app(session: Session, slug: str) -> App:
    app = crud_apps.get_app(session, slug=slug)
    if app is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"No app '{slug}'. GET /api/apps lists the apps.")
    return app


def find_version(session: Session, app: App, number: int | None = None) -> AppVersion:
    version = crud_apps.get_version(session, app_id=app.id, number=number)
    if version is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"App '{app.slug}' has no version {number}.")
    return version


def _unprocessable(message: str, problems: list[str]) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail={"message": message, "problems": problems})


@router.post("", status_code=status.HTTP_201_CREATED)
async def publish(body: PublishRequest, services: ServicesDep, _: AdminDep) -> AppOut:
    """Publish a workflow as an app, or as version N+1 of the app with the same slug."""
    slug = body.slug or slug_of(body.name)
    if not SLUG.match(slug):
        raise _unprocessable(f"slug '{slug}' is not usable in a URL", ["use lowercase letters, digits and -"])
    try:
        workflow = load_workflow(body.workflow)
    except WorkflowFormatError as exc:
        raise _unprocessable("The workflow cannot be read", [str(exc)]) from None
    catalog = await services.catalog()
    try:
        check_graph(workflow, catalog)
        spec = build_app_spec(workflow, catalog, [i.model_dump(exclude_none=True) for i in body.inputs],
                              outputs=body.outputs, timeout_s=body.timeout_s)
    except GraphValidationError as exc:
        raise _unprocessable("The workflow would not run on this engine", [str(p) for p in exc.problems]) from None
    except AppSpecError as exc:
        raise _unprocessable("The app cannot be published", exc.problems) from None
    published = await services.db(_store_version, slug, body, spec)
    services.openapi_generation += 1
    return published


def _store_version(session: Session, slug: str, body: PublishRequest, spec: AppSpec) -> AppOut:
    existing = crud_apps.get_app(session, slug=slug, include_deleted=True)
    public = body.public if body.public is not None else bool(existing and existing.public)
    try:
        version = crud_apps.publish_version(session, slug=slug, name=body.name, description=body.description,
                                            public=public, spec=spec.to_dict())
    except IntegrityError:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"'{slug}' was being published by another request "
                                                             "at the same moment; publish again.") from None
    return AppOut.of(find_app(session, slug), version)


def visible_app(session: Session, caller: Caller, slug: str) -> App:
    """Private apps are described to key holders only (as they are run by them only)."""
    app = find_app(session, slug)
    require_runner(caller, public=app.public)
    return app


@router.get("")
async def list_apps(services: ServicesDep, caller: CallerDep) -> list[AppOut]:
    def listed(session: Session) -> list[AppOut]:
        apps = [app for app in crud_apps.list_apps(session) if app.public or caller.key_id is not None]
        return [AppOut.of(app, find_version(session, app), detail=False) for app in apps]

    return await services.db(listed)


@router.get("/{slug}")
async def get_app(slug: str, services: ServicesDep, caller: CallerDep) -> AppOut:
    def described(session: Session) -> AppOut:
        app = visible_app(session, caller, slug)
        return AppOut.of(app, find_version(session, app))

    return await services.db(described)


@router.get("/{slug}/versions")
async def list_versions(slug: str, services: ServicesDep, caller: CallerDep) -> list[VersionOut]:
    def listed(session: Session) -> list[VersionOut]:
        app = visible_app(session, caller, slug)
        return [VersionOut.of(v) for v in crud_apps.list_versions(session, app_id=app.id)]

    return await services.db(listed)


@router.get("/{slug}/versions/{number}")
async def get_version(slug: str, number: int, services: ServicesDep, caller: CallerDep) -> VersionOut:
    def described(session: Session) -> VersionOut:
        return VersionOut.of(find_version(session, visible_app(session, caller, slug), number))

    return await services.db(described)


@router.get("/{slug}/openapi.json")
async def app_openapi(slug: str, request: Request, services: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    """This app's OpenAPI document with its typed request model (private apps included, for key holders)."""
    def document(session: Session) -> dict[str, Any]:
        app = visible_app(session, caller, slug)
        schema = base_schema(request.app)
        add_app_paths(schema, app, find_version(session, app))
        return schema

    return await services.db(document)


@router.delete("/{slug}", status_code=status.HTTP_204_NO_CONTENT)
async def unpublish(slug: str, services: ServicesDep, _: AdminDep) -> None:
    """Unpublish: the app stops answering; its run history is kept. Publishing again revives it."""
    def unpublished(session: Session) -> None:
        crud_apps.unpublish(session, app_id=find_app(session, slug).id)
        session.commit()

    await services.db(unpublished)
    services.openapi_generation += 1


@router.get("/{slug}/webhook-secret")
async def webhook_secret(slug: str, services: ServicesDep, _: AdminDep) -> dict[str, str]:
    """The secret this app's webhooks are signed with (derived from the server's key, never stored)."""
    await services.db(find_app, slug)
    return {"secret": services.runs.webhook_secret(slug), "header": "Comfy-Publisher-Signature",
            "scheme": "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, '<t>.' + body)>"}
