"""Per-app typed OpenAPI: each published app gets request models generated from its inputs, and its own
run endpoints in /docs, so clients can be generated per app."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, create_model

from app.publish.openapi_media import file_description, is_file_input, json_schema_extra, multipart_schema
from app.services import Services
from db import crud_apps
from db.models import App, AppVersion
from publisher import AppInput, AppSpec

_MAX_LITERAL_CHOICES = 500  # past this, a choice is documented as a string with the list in its description


def _field(item: AppInput) -> tuple[Any, Any]:
    description = item.help or item.label
    bounds = {key: value for key, value in (("ge", item.min), ("le", item.max)) if value is not None}
    annotation: Any
    match item.type:
        case "int":
            annotation = int
        case "float":
            annotation = float
        case "bool":
            annotation = bool
        case "seed":
            annotation = int
            description += " (leave out, or -1, for a random seed; the seed used is returned)"
            bounds = {}
        case "choice" if item.choices and len(item.choices) <= _MAX_LITERAL_CHOICES:
            annotation = Literal[tuple(item.choices)]  # type: ignore[valid-type]
        case "image" | "mask" | "video" | "audio" | "file":
            annotation = str
            description += file_description(item)
            bounds = {"json_schema_extra": json_schema_extra(item)}
        case "text":
            annotation = str
            if item.max_length is not None:
                bounds = {"max_length": item.max_length}
        case _:
            annotation = str
    default = ... if item.required else (None if item.type == "seed" or is_file_input(item) else item.default)
    return (annotation if item.required else annotation | None,
            Field(default, title=item.label, description=description, **bounds))


def request_model(slug: str, spec: AppSpec) -> type[BaseModel]:
    """`{"inputs": {...typed...}, "webhook": url?}` for one app version."""
    camel = "".join(part.capitalize() for part in slug.replace("_", "-").split("-")) or "App"
    inputs = create_model(f"{camel}Inputs", **{item.name: _field(item) for item in spec.inputs})  # type: ignore
    return create_model(
        f"{camel}RunRequest",
        inputs=(inputs, Field(default_factory=dict, description="values of the app's inputs")),
        webhook=(str | None, Field(None, description="URL called with the result, signed (see docs)")),
    )


def install_openapi(app: FastAPI, services: Services) -> None:
    """/openapi.json (and /docs) carry the public apps; a private app's document is at
    /api/apps/{slug}/openapi.json, for key holders."""
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if cache.get("generation") == services.apps.generation and "schema" in cache:
            return cache["schema"]
        schema = base_schema(app)
        with services.sessions() as session:
            for row in crud_apps.list_apps(session):
                version = crud_apps.get_version(session, app_id=row.id)
                if row.public and version is not None:
                    add_app_paths(schema, row, version)
        cache.update(generation=services.apps.generation, schema=schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

    # FastAPI serves /openapi.json from an async route that builds the schema on the event loop; the
    # apps come from the database, which is read in a worker thread (see db.session).
    app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) != app.openapi_url]

    async def openapi_json(_: Request) -> JSONResponse:
        return JSONResponse(await asyncio.to_thread(app.openapi))

    app.add_route(app.openapi_url, openapi_json, include_in_schema=False)


def base_schema(app: FastAPI) -> dict[str, Any]:
    return get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)


def add_app_paths(schema: dict[str, Any], app_row: App, version: AppVersion) -> None:
    """Typed request model and the run endpoints of one app version."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    spec = AppSpec.from_dict(version.spec)
    model = request_model(app_row.slug, spec)
    body = model.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = body.pop("$defs", {})
    components.update(defs)
    components[model.__name__] = body
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    content: dict[str, Any] = {"application/json": {"schema": ref}}
    if any(is_file_input(item) for item in spec.inputs):  # files may come as file parts
        inputs_schema = defs.get(body["properties"]["inputs"]["$ref"].rsplit("/", 1)[-1], {})
        content["multipart/form-data"] = multipart_schema(inputs_schema, spec.inputs)
    for suffix, summary in (("run", "run and wait for the result"), ("runs", "queue a run (202)")):
        schema["paths"][f"/api/apps/{app_row.slug}/{suffix}"] = {"post": {
            "tags": [f"app: {app_row.slug}"],
            "summary": f"{app_row.name}: {summary}",
            "description": app_row.description or "",
            "operationId": f"{app_row.slug.replace('-', '_')}_{suffix}",
            "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                            "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": content},
            "responses": {
                "200": _json_answer("the run, finished", "RunOut"),
                "202": _json_answer("the run, queued or running: follow its Location", "RunOut"),
                **{str(code): _json_answer(meaning, "ErrorOut") for code, meaning in _RUN_ERRORS.items()},
            },
        }}


# What a run submission can answer besides the run (the error shape is app.errors.ErrorOut).
_RUN_ERRORS = {
    400: "the body is malformed (a truncated or invalid multipart body)",
    401: "this app is private: send `Authorization: Bearer <key>`; or the key is unknown or revoked",
    403: "this key may not run this app",
    404: "no such app",
    413: "the body is over this server's cap (--max-upload-mb)",
    422: "inputs that do not fit, each named",
    429: "queue full; see Retry-After",
    503: "no engine can take it now, or the uploads cannot be stored",
}


def _json_answer(description: str, model: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}}}
