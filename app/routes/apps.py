"""Publishing: create an app or a new version of it, list, read, unpublish."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from sqlalchemy.orm import Session

from app.deps import AdminDep, CallerDep, DbInt, ServicesDep
from app.errors import Unprocessable, error_responses
from app.publish import service as publishing
from app.publish.lookup import find_app, find_version, visible_app
from app.publish.openapi import add_app_paths, base_schema
from app.publish.service import SLUG, PublishRequest, slug_of
from app.routes.schemas import AppOut, VersionOut
from db import crud_apps
from publisher.quoting import cut

router = APIRouter(prefix="/api/apps", tags=["apps"], responses=error_responses(400, 401, 403, 404, 413, 422, 503))


@router.post("", status_code=status.HTTP_201_CREATED)
async def publish(body: PublishRequest, services: ServicesDep, _: AdminDep) -> AppOut:
    """Publish a workflow as an app, or as version N+1 of the app with the same slug."""
    slug = body.slug or slug_of(body.name)
    if not SLUG.match(slug):  # before asking the engine for its catalog
        raise Unprocessable(f"slug '{cut(slug)}' is not usable in a URL", ["use lowercase letters, digits and -"])
    catalog = await services.catalog.get()
    app, version = await publishing.publish(services, body, catalog)
    return AppOut.of(app, version, warnings=publishing.model_warnings(services, app.slug, version))


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
async def get_version(slug: str, number: DbInt, services: ServicesDep, caller: CallerDep) -> VersionOut:
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
    await services.apps.changed(slug)


@router.get("/{slug}/webhook-secret")
async def webhook_secret(slug: str, services: ServicesDep, _: AdminDep) -> dict[str, str]:
    """The secret this app's webhooks are signed with (derived from the server's key, never stored)."""
    await services.db(find_app, slug)
    return {"secret": services.runs.webhook_secret(slug), "header": "Comfy-Publisher-Signature",
            "scheme": "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, '<t>.' + body)>"}
