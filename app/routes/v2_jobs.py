"""The Comfy API v2's jobs (and its health), at each v2 base URL: the server's own (`/api/v2`), each app's
(`/apps/{slug}/api/v2`) and each app version's (`/apps/{slug}/versions/{n}/api/v2`). Routes translate HTTP to
app.v2.jobs and back; errors answer in the v2 envelope (app.v2.errors)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, FastAPI, Header, Request, status
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.orm import Session

from app.auth.keys import Caller, identify, require_runner
from app.deps import ServicesDep
from app.runs.submission import AppRef
from app.v2.asset_access import AssetAccess
from app.v2.errors import V2Error
from app.v2.job_events import job_stream
from app.v2.job_view import Surface
from app.v2.jobs import V2Jobs
from app.v2.schemas import Health, Job, JobWorkflow, error_answers
from db import crud_v2

# Where a v2 base URL is: "" (the server's), an app's, an app version's. A v2 router included at each of these
# (include_at_surfaces) answers on every base URL; its handlers read `slug` and `number` from request.path_params
# (never as parameters: a route without them would read them from the query string).
SURFACE_PREFIXES = ("", "/apps/{slug}", "/apps/{slug}/versions/{number}")

router = APIRouter(tags=["Comfy API v2"])
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]
_MAX_SLUG = 64
T = TypeVar("T")


def include_at_surfaces(app: FastAPI, v2_router: APIRouter) -> None:
    """A v2 router at every v2 base URL. Include it before the forms are mounted at /apps/{slug}/: the first route
    that matches a path answers it."""
    for prefix in SURFACE_PREFIXES:
        app.include_router(v2_router, prefix=prefix, include_in_schema=prefix == "")


def include_at_app_surfaces(app: FastAPI, v2_router: APIRouter) -> None:
    """A v2 router at each app's base URLs only (the server-wide one is included at the root elsewhere), e.g. the
    assets' routes built with `app_asset_access` as who calls: the SDK uploads to `{base}/api/v2/assets`."""
    for prefix in SURFACE_PREFIXES[1:]:
        app.include_router(v2_router, prefix=prefix, include_in_schema=False)


def app_caller_check(request: Request) -> Callable[[Session], Caller]:
    """Who calls an app's base URL, checked in a trip to the database: the app must exist, and the caller may run it
    (any key for a private app; anyone for a public one), as for its jobs."""
    app = _app_ref(request)
    authorization = request.headers.get("authorization")

    def check(session: Session) -> Caller:
        caller = identify(session, authorization)
        if app is not None:
            found = crud_v2.app_access(session, slug=app.slug)
            if found is None:
                raise V2Error("not_found", f"No app '{app.slug}'. GET /api/apps lists the apps.")
            require_runner(caller, public=found.public)
        return caller

    return check


def app_asset_access(request: Request) -> Callable[[Session], AssetAccess]:
    """Who may use the assets at an app's base URL: whoever may run the app (anonymous callers of a public app own
    what they upload together)."""
    who = app_caller_check(request)

    def check(session: Session) -> AssetAccess:
        caller = who(session)
        return AssetAccess(caller.key_id, caller.admin)

    return check


def _jobs(request: Request) -> V2Jobs:
    return request.app.state.v2_jobs  # type: ignore[no-any-return]


def _app_ref(request: Request) -> AppRef | None:
    slug = request.path_params.get("slug")
    if slug is None:
        return None
    number = request.path_params.get("number")
    if len(slug) > _MAX_SLUG or (number is not None and not (str(number).isdigit() and 0 < int(number) < 2**31)):
        raise V2Error("not_found", "No such app or version.")
    return AppRef(slug, int(number) if number is not None else None)


async def surface_of(request: Request, services: Any) -> tuple[Surface, AppRef | None]:
    """The base URL this request came to; an app's must exist."""
    surface, app = _surface(request)
    if app is None:
        return surface, None
    return await services.db(_with_app_id, surface, app), app


async def in_surface(request: Request, services: Any, work: Callable[..., T], *args: Any) -> T:
    """`work(session, surface, *args)` at the base URL this request came to, in one trip to the database (an app's
    base URL is looked up in the same trip: a status poll there costs no trip more than at /api/v2)."""
    surface, app = _surface(request)

    def run(session: Session) -> T:
        return work(session, _with_app_id(session, surface, app) if app is not None else surface, *args)

    return await services.db(run)  # type: ignore[no-any-return]


def _surface(request: Request) -> tuple[Surface, AppRef | None]:
    origin = f"{request.url.scheme}://{request.url.netloc}"
    app = _app_ref(request)
    if app is None:
        return Surface("/api/v2", origin), None
    version = f"/versions/{app.number}" if app.number is not None else ""
    return Surface(f"/apps/{app.slug}{version}/api/v2", origin), app


def _with_app_id(session: Session, surface: Surface, app: AppRef) -> Surface:
    found = crud_v2.app_access(session, slug=app.slug)
    if found is None:
        raise V2Error("not_found", f"No app '{app.slug}'. GET /api/apps lists the apps.")
    return dataclasses.replace(surface, app_id=found.id)


@router.get("/api/v2/health", summary="Health of this v2 base URL", response_model=Health)
async def health(services: ServicesDep) -> dict[str, Any]:
    """`healthy` once an engine is ready (`starting` before, `unavailable` when the engines failed to start)."""
    engines = services.engines
    state = "healthy" if engines.is_ready() else ("unavailable" if engines.problem() else "starting")
    return {"status": state, "engine": engines.state}


@router.post("/api/v2/jobs", status_code=status.HTTP_201_CREATED, summary="Submit a workflow", response_model=None,
             responses={201: {"model": Job}, **error_answers(400, 401, 403, 404, 413, 422, 429, 503)})
async def create_job(request: Request, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """The API-format workflow, verbatim (`{"workflow": {...}}`): any workflow here (admin keys and keys with the
    "workflows" permission); an app's published workflow with only its inputs changed on an app's base URL."""
    # The app is looked up in the submission's own trip to the database (a missing one is not_found there).
    surface, app = _surface(request)
    job = await _jobs(request).submit(surface, app, await request.body(), request.headers.get("authorization"),
                                      idempotency_key)
    return JSONResponse(job, status_code=status.HTTP_201_CREATED, headers={"Location": job["urls"]["self"]})


@router.get("/api/v2/jobs/{job_id}", summary="A job (poll it)", response_model=None,
            responses={200: {"model": Job}, **error_answers(401, 404, 422)})
async def get_job(job_id: str, request: Request, services: ServicesDep) -> JSONResponse:
    jobs, authorization = _jobs(request), request.headers.get("authorization")
    surface, app = _surface(request)
    # A job in flight here, polled by its own key: from memory (a client polls every few ms while it runs).
    live = jobs.read_live(surface, app, authorization, job_id)
    if live is not None:
        return JSONResponse(live)
    return JSONResponse(await in_surface(request, services, jobs.read, authorization, job_id))


@router.get("/api/v2/jobs/{job_id}/workflow", summary="The workflow a job ran", response_model=None,
            responses={200: {"model": JobWorkflow}, **error_answers(401, 404, 422)})
async def get_job_workflow(job_id: str, request: Request, services: ServicesDep) -> JSONResponse:
    return JSONResponse(await in_surface(request, services, _jobs(request).workflow,
                                         request.headers.get("authorization"), job_id))


@router.post("/api/v2/jobs/{job_id}/cancel", summary="Cancel a job", response_model=None,
             responses={200: {"model": Job}, **error_answers(401, 404, 413, 422)})
async def cancel_job(job_id: str, request: Request, services: ServicesDep) -> JSONResponse:
    surface, _ = await surface_of(request, services)
    return JSONResponse(await _jobs(request).cancel(surface, request.headers.get("authorization"), job_id))


@router.get("/api/v2/jobs/{job_id}/events", response_class=StreamingResponse, summary="A job's live events (SSE)",
            responses={200: {"content": {"text/event-stream": {}}}, **error_answers(401, 404, 422)})
async def job_events(job_id: str, request: Request, services: ServicesDep) -> StreamingResponse:
    surface, _ = await surface_of(request, services)
    jobs, runs, authorization = _jobs(request), services.runs, request.headers.get("authorization")
    queue = runs.subscribe(job_id)  # before reading the state: no event falls in between
    jobs.follow(job_id, queue)
    try:
        first, nodes_total = await services.db(jobs.snapshot, surface, authorization, job_id)
    except BaseException:
        runs.unsubscribe(job_id, queue)
        jobs.unfollow(job_id, queue)
        raise

    async def stream() -> Any:
        try:
            async for text in job_stream(first, queue, nodes_total=nodes_total,
                                         current=lambda: services.db(jobs.read, surface, authorization, job_id),
                                         position=lambda: runs.position(job_id),
                                         disconnected=request.is_disconnected):
                yield text
        finally:
            runs.unsubscribe(job_id, queue)
            jobs.unfollow(job_id, queue)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
