"""Running apps: sync and async submission, status, events (SSE), cancel, history."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, status
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import Row
from sqlalchemy.orm import Session

from app.auth.keys import Caller, identify, require_runner
from app.deps import CallerDep, DbInt, ServicesDep
from app.errors import Forbidden, NotFound, Unauthorized, Unprocessable, error_responses
from app.routes.multipart import read_form
from app.runs.inputs import FormFields, JsonBody
from app.runs.service import RunService
from app.runs.submission import AppRef, Submission
from app.runs.views import RunOut, RunPage, history
from app.services import Services
from db import crud_apps, crud_runs
from publisher.quoting import cut
from runtimes.contract import FINAL_STATUSES, RunStatus

router = APIRouter(tags=["runs"], responses=error_responses(400, 401, 403, 404, 409, 413, 422))
# What a submission answers (besides what every route of this router can).
_SUBMIT_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"model": RunOut, "description": "the run, finished"},
    202: {"model": RunOut, "description": "the run, queued or running: follow its Location"},
    **error_responses(429, 503)}
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
_KEEPALIVE_S = 15.0


async def _submit(request: Request, services: Services, slug: str, number: int | None,
                  idempotency_key: str | None) -> RunOut:
    runs, app, authorization = services.runs, AppRef(slug, number), request.headers.get("authorization")
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        # Who may run what is settled before the web server reads (and spools) the files.
        caller, version = await runs.authorize(app, authorization)
        sub = Submission(version, FormFields(await read_form(request)), caller=caller,
                         idempotency_key=idempotency_key)
    else:
        sub = Submission(app, JsonBody(await request.body()), authorization=authorization,
                         idempotency_key=idempotency_key)
    accepted = await runs.submit(sub)
    # A new run is known without reading it back; an earlier one with this Idempotency-Key is read.
    return runs.accepted_view(accepted) or await services.db(_current, runs, accepted.run.id)


def _current(session: Session, runs: RunService, run_id: str) -> RunOut:
    return runs.view(session, crud_runs.get_run(session, run_id=run_id))


def _accepted(out: RunOut) -> Response:
    code = status.HTTP_200_OK if out.status in FINAL_STATUSES else status.HTTP_202_ACCEPTED
    return _json(out, code, headers={"Location": f"/api/runs/{out.id}"})


def _json(out: RunOut, code: int = status.HTTP_200_OK, headers: dict[str, str] | None = None) -> Response:
    # Serialized straight to JSON bytes: the model is already valid, FastAPI's response_model would check it again.
    return Response(out.model_dump_json(), status_code=code, headers=headers, media_type="application/json")


_RUN_DOC = ("Inputs as JSON `{\"inputs\": {...}, \"webhook\": url?}` (images as base64 or data URLs) or as "
            "multipart form fields and files. Each app's typed body is in its own section of /docs.")


@router.post("/api/apps/{slug}/run", summary="Run and wait", description=_RUN_DOC, include_in_schema=False)
async def run_sync(request: Request, slug: str, services: ServicesDep,
                   idempotency_key: IdempotencyKey = None) -> Response:
    return await _run_and_wait(request, services, slug, None, idempotency_key)


@router.post("/api/apps/{slug}/versions/{number}/run", summary="Run a pinned version and wait",
             description=_RUN_DOC, responses=_SUBMIT_ANSWERS)
async def run_sync_pinned(request: Request, slug: str, number: DbInt, services: ServicesDep,
                          idempotency_key: IdempotencyKey = None) -> Response:
    """Waits up to the server's sync limit (60 s by default, --sync-wait): 200 with the finished run, or 202
    with the run id to poll when it takes longer."""
    return await _run_and_wait(request, services, slug, number, idempotency_key)


async def _run_and_wait(request: Request, services: Services, slug: str, number: int | None,
                        idempotency_key: str | None) -> Response:
    submitted = await _submit(request, services, slug, number, idempotency_key)
    if submitted.status in FINAL_STATUSES:
        return _accepted(submitted)
    final = await services.runs.wait(submitted.id, services.settings.sync_wait_s)
    # The run as its end was recorded; read again only when it ended elsewhere or is still going.
    return _accepted(final or await services.db(_current, services.runs, submitted.id))


@router.post("/api/apps/{slug}/runs", summary="Queue a run", description=_RUN_DOC, include_in_schema=False)
async def run_async(request: Request, slug: str, services: ServicesDep,
                    idempotency_key: IdempotencyKey = None) -> Response:
    return _accepted(await _submit(request, services, slug, None, idempotency_key))


@router.post("/api/apps/{slug}/versions/{number}/runs", summary="Queue a run of a pinned version",
             description=_RUN_DOC, responses=_SUBMIT_ANSWERS)
async def run_async_pinned(request: Request, slug: str, number: DbInt, services: ServicesDep,
                           idempotency_key: IdempotencyKey = None) -> Response:
    """202 with the run id at once; follow it at /api/runs/{id} or /api/runs/{id}/events."""
    return _accepted(await _submit(request, services, slug, number, idempotency_key))


def _readable_run(session: Session, caller: Caller, run_id: str) -> Row[Any]:
    """Run ids are random: knowing one is enough to read the run, as with its output links; a private
    app's runs still need a key."""
    run = crud_runs.run_and_access(session, run_id=run_id)
    if run is None:
        raise NotFound(f"No run '{cut(run_id)}'.")
    require_runner(caller, public=run.app_public)
    return run


def _may_cancel(caller: Caller, run: Row[Any]) -> None:
    if not caller.admin and run.api_key_id != caller.key_id:
        raise Forbidden("Only the key that submitted a run, or an admin key, may cancel it.")


def _readable_view(session: Session, runs: RunService, caller: Caller, run_id: str) -> RunOut:
    return runs.view(session, _readable_run(session, caller, run_id))


def _status(session: Session, runs: RunService, authorization: str | None, run_id: str) -> RunOut:
    # The caller and the run in one trip to the database: status polling is the API's most frequent request.
    return _readable_view(session, runs, identify(session, authorization), run_id)


@router.get("/api/runs/{run_id}", response_model=RunOut)
async def get_run(run_id: str, request: Request, services: ServicesDep) -> Response:
    """Status, progress, queue position, timings, inputs as applied, outputs, error."""
    return _json(await services.db(_status, services.runs, request.headers.get("authorization"), run_id))


@router.post("/api/runs/{run_id}/cancel")
async def cancel_run(run_id: str, services: ServicesDep, caller: CallerDep) -> RunOut:
    """Removes a queued run; interrupts a running one on its engine."""
    run = await services.db(_readable_run, caller, run_id)
    _may_cancel(caller, run)
    if run.status not in FINAL_STATUSES:
        await services.runs.cancel(run_id)
        if final := await services.runs.wait(run_id, 30):
            return final
    return await services.db(_current, services.runs, run_id)


@router.get("/api/runs")
async def list_runs(services: ServicesDep, caller: CallerDep, app: str | None = None,
                    status_: Annotated[str | None, Query(alias="status")] = None,
                    limit: Annotated[int, Query(ge=1, le=200)] = 50, before: str | None = None) -> RunPage:
    """Run history, newest first; page with ?before=<next_before>. Admin keys see every run; other keys
    see the runs they submitted."""
    if caller.key_id is None:
        raise Unauthorized("Run history needs an API key.")
    statuses = [s.value for s in RunStatus]
    if status_ is not None and status_ not in statuses:
        raise Unprocessable(f"status must be one of {', '.join(statuses)}")

    def page(session: Session) -> RunPage:
        app_id = None
        if app is not None:
            # History outlives unpublishing, and covers the v2 jobs of any workflow (the internal app).
            found = crud_apps.get_app(session, slug=app, include_deleted=True, include_internal=True)
            if found is None:
                raise NotFound(f"No app '{cut(app)}'.")
            app_id = found.id
        runs = history(session, app_id=app_id, status=status_, limit=limit, before=before,
                       api_key_id=None if caller.admin else caller.key_id)
        return RunPage(runs=[services.runs.view(session, run, files) for run, files in runs],
                       next_before=runs[-1][0].id if len(runs) == limit else None)

    return await services.db(page)


@router.get("/api/runs/{run_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def run_events(run_id: str, request: Request, services: ServicesDep, caller: CallerDep) -> StreamingResponse:
    """Server-sent events: `status` (the run now), `started`, `progress` {node, value, max}, `preview`
    {mime, data (base64)}, `retrying`, and `completed` (the final run) after which the stream ends."""
    runs = services.runs
    queue = runs.subscribe(run_id)  # before reading the state: no event falls in between
    try:
        first = await services.db(_readable_view, runs, caller, run_id)
    except BaseException:
        runs.unsubscribe(run_id, queue)
        raise

    async def stream() -> AsyncIterator[str]:
        try:
            yield _sse("status", first.model_dump(mode="json"))
            if first.status in FINAL_STATUSES:
                yield _sse("completed", first.model_dump(mode="json"))
                return
            while not await request.is_disconnected():
                try:
                    event = await asyncio.wait_for(queue.get(), _KEEPALIVE_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if event["event"] == "finished":
                    final = event.get("run") or await services.db(_current, runs, run_id)
                    yield _sse("completed", final.model_dump(mode="json"))
                    return
                yield _sse(event["event"], {k: v for k, v in event.items() if k != "event"})
        finally:
            runs.unsubscribe(run_id, queue)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"
