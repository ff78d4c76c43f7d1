"""Serverless deployments (Modal, RunPod): settings schema per target, preview of the generated files, deploy with
a streamed log, teardown, and the switch of an app's runtime between the local engines and a deployment."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from app.deploy.service import DeployOptions, Plan
from app.deps import MAX_DB_INT, AdminDep, DbInt, ServicesDep
from app.errors import Conflict, NotFound, Unavailable, Unprocessable, error_responses
from app.publish.lookup import find_app
from app.services import Services
from db import crud_deployments
from db.models import AppVersion, Deployment
from runtimes.serverless.errors import DeployError
from runtimes.serverless.packs import BundleInputError
from runtimes.serverless.settings import DeploySettingsError

router = APIRouter(tags=["deployments"], responses=error_responses(400, 401, 403, 404, 409, 413, 422, 503))
Target = Literal["modal", "runpod"]
TargetQuery = Annotated[Target, Query(description="the provider: modal or runpod")]


class DeployRequest(BaseModel):
    target: Target = Field("modal", description="where to deploy: Modal, or RunPod serverless")
    version: int | None = Field(None, ge=1, le=MAX_DB_INT, description="app version to deploy (default: the latest)")
    settings: dict[str, Any] = Field(default_factory=dict,
                                     description="the target's settings: see GET /api/deploy/settings?target=...")
    image: str | None = Field(None, max_length=512,
                              description="runpod: the worker image, built from the generated files and pushed "
                                          "(REGISTRY/NAME:TAG)")


class RuntimeRequest(BaseModel):
    runtime: Literal["local", "modal", "runpod"]
    deployment_id: int | None = Field(None, ge=1, le=MAX_DB_INT,
                                      description="with modal or runpod: which live deployment of that provider "
                                                  "(default: the newest)")


class DeploymentOut(BaseModel):
    id: int
    app: str
    version: int | None
    provider: str
    app_name: str | None
    status: str
    url: str | None
    serving: bool
    settings: dict[str, Any]
    cost: dict[str, Any]
    error: str | None
    created_at: datetime
    updated_at: datetime
    log: str | None = None

    @classmethod
    def of(cls, deployment: Deployment, *, slug: str, version: int | None, cost: dict[str, Any],
           with_log: bool = False) -> DeploymentOut:
        return cls(id=deployment.id, app=slug, version=version, provider=deployment.provider,
                   app_name=deployment.app_name, status=deployment.status, url=deployment.url,
                   serving=deployment.serving, settings=deployment.settings, cost=cost, error=deployment.error,
                   created_at=deployment.created_at, updated_at=deployment.updated_at,
                   log=deployment.log if with_log else None)


def _plan(services: ServicesDep, slug: str, body: DeployRequest) -> Plan:
    try:
        return services.deployments.plan(slug, body.version, body.settings, body.target,
                                         DeployOptions(image=body.image))
    except DeploySettingsError as exc:
        raise Unprocessable("Invalid deploy settings", exc.problems) from None
    except BundleInputError as exc:  # the version's node packs or model names cannot go into an image
        raise Unprocessable("This app version cannot be deployed", exc.problems) from None


def _out(session: Session, deployment: Deployment, slug: str, services: Services, *,
         prices: Mapping[str, float] | None = None, with_log: bool = False) -> DeploymentOut:
    """`prices`: the GPU prices in force, when the caller lists several deployments (read once, not per row)."""
    version = session.get(AppVersion, deployment.version_id) if deployment.version_id else None
    prices = services.deployments.gpu_prices().usd_per_hour if prices is None else prices
    return DeploymentOut.of(deployment, slug=slug, version=version.number if version else None,
                            cost=services.deployments.cost(deployment.provider, deployment.settings, prices),
                            with_log=with_log)


@router.get("/api/deploy/settings")
def deploy_settings(services: ServicesDep, _: AdminDep,
                    target: TargetQuery = "modal") -> dict[str, Any]:
    """Every deploy setting of a target: type, default, limits, one-line help and cost note; for Modal the GPU
    prices in force (see /api/deploy/prices); whether the target's credentials are configured on this server."""
    schema = services.deployments.target(target).schema()
    if target != "modal":
        return schema
    table = services.deployments.gpu_prices()
    return {**schema, "gpu_prices_usd_per_hour": dict(table.usd_per_hour), "gpu_prices_checked": table.describe()}


@router.post("/api/apps/{slug}/deployments/preview")
async def preview(slug: str, body: DeployRequest, services: ServicesDep, _: AdminDep) -> dict[str, Any]:
    """The files a deploy would ship (Modal: modal_app.py, app_spec.json; RunPod: Dockerfile, handler.py, ...) and
    the cost of the settings; deploys nothing."""
    plan = await asyncio.to_thread(_plan, services, slug, body)
    return {"target": plan.target, "version": plan.version.number, "settings": plan.settings.to_dict(),
            "cost": services.deployments.cost(plan.target, plan.settings.to_dict(), plan.prices.usd_per_hour),
            "files": plan.bundle.files, "warnings": plan.bundle.warnings, "app_name": plan.app_name}


@router.post("/api/apps/{slug}/deployments", status_code=status.HTTP_202_ACCEPTED)
async def deploy(slug: str, body: DeployRequest, services: ServicesDep, _: AdminDep) -> DeploymentOut:
    """Deploy (or redeploy) a version to Modal or RunPod ("image": the worker image, pushed). Checks credentials
    and the network first (a 503 within seconds, nothing recorded); then answers 202 and deploys in the
    background: follow GET .../deployments/{id}/log."""
    plan = await asyncio.to_thread(_plan, services, slug, body)
    try:
        deployment = await services.deployments.start(plan)
    except DeploySettingsError as exc:  # the options (RunPod's image)
        raise Unprocessable("Invalid deploy settings", exc.problems) from None
    except DeployError as exc:
        raise Unavailable(str(exc)) from None
    return await services.db(_out, deployment, slug, services)


@router.get("/api/apps/{slug}/deployments")
async def list_deployments(slug: str, services: ServicesDep, _: AdminDep) -> list[DeploymentOut]:
    def listed(session: Session) -> list[DeploymentOut]:
        app = find_app(session, slug)
        prices = services.deployments.gpu_prices().usd_per_hour
        return [_out(session, d, slug, services, prices=prices)
                for d in crud_deployments.list_deployments(session, app_id=app.id)]

    return await services.db(listed)


def _deployment(session: Session, slug: str, deployment_id: int) -> Deployment:
    app = find_app(session, slug)
    deployment = crud_deployments.get_deployment(session, deployment_id=deployment_id)
    if deployment is None or deployment.app_id != app.id:
        raise NotFound(f"App '{slug}' has no deployment {deployment_id}.")
    return deployment


def _described(session: Session, slug: str, deployment_id: int, services: Services,
               with_log: bool = False) -> DeploymentOut:
    return _out(session, _deployment(session, slug, deployment_id), slug, services, with_log=with_log)


@router.get("/api/apps/{slug}/deployments/{deployment_id}")
async def get_deployment(slug: str, deployment_id: DbInt, services: ServicesDep, _: AdminDep) -> DeploymentOut:
    return await services.db(_described, slug, deployment_id, services, True)


@router.get("/api/apps/{slug}/deployments/{deployment_id}/log", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def deployment_log(slug: str, deployment_id: DbInt, request: Request, services: ServicesDep,
                         _: AdminDep) -> StreamingResponse:
    """Server-sent events: `line` {text} for the log so far and each new line, then `done` (the deployment)."""
    await services.db(_deployment, slug, deployment_id)  # 404 before listening
    queue = services.deployments.listen(deployment_id)  # before reading the log: no line falls in between
    try:
        already = (await services.db(_deployment, slug, deployment_id)).log.splitlines()
    except BaseException:
        services.deployments.unlisten(deployment_id, queue)
        raise

    async def stream() -> AsyncIterator[str]:
        try:
            for line in already:
                yield _sse("line", {"text": line})
            while not await request.is_disconnected():
                line = await queue.get()  # (a line flushed just before the log was read can come twice)
                if line is None:
                    break
                yield _sse("line", {"text": line})
            final = await services.db(_described, slug, deployment_id, services)
            yield _sse("done", final.model_dump(mode="json"))
        finally:
            services.deployments.unlisten(deployment_id, queue)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.delete("/api/apps/{slug}/deployments")
async def teardown(slug: str, services: ServicesDep, _: AdminDep,
                   target: TargetQuery = "modal") -> dict[str, Any]:
    """Stop the app's deployment on the target (Modal: its app stops; RunPod: its endpoint, then its template, are
    deleted): the URL stops answering, runs go to the local engines."""
    try:
        stopped = await services.deployments.teardown(slug, target)
    except DeployError as exc:
        raise Unavailable(str(exc)) from None
    return {"stopped": stopped, "runtime": "local"}


def _runtime(session: Session, slug: str, services: Services) -> dict[str, Any]:
    serving = crud_deployments.serving_deployment(session, app_id=find_app(session, slug).id)
    if serving is None:
        return {"runtime": "local", "deployment": None}
    return {"runtime": serving.provider,
            "deployment": _out(session, serving, slug, services).model_dump(mode="json")}


@router.get("/api/apps/{slug}/runtime")
async def get_runtime(slug: str, services: ServicesDep, _: AdminDep) -> dict[str, Any]:
    return await services.db(_runtime, slug, services)


@router.put("/api/apps/{slug}/runtime")
async def set_runtime(slug: str, body: RuntimeRequest, services: ServicesDep, _: AdminDep) -> dict[str, Any]:
    """Where the app's runs go: "local" (this server's engines), "modal" or "runpod" (a live deployment there;
    runs of the deployed version go there, other versions stay local). Run records and the API stay the same."""
    try:
        await asyncio.to_thread(services.deployments.set_runtime, slug, body.runtime, body.deployment_id)
    except ValueError as exc:
        raise Conflict(str(exc)) from None
    return await services.db(_runtime, slug, services)


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"
