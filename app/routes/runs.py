"""Running apps: sync and async submission, status, events (SSE), cancel, history."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, status
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import Row
from sqlalchemy.orm import Session

from app.auth import Caller, require_runner
from app.deps import CallerDep, ServicesDep, identify_caller
from app.routes.apps import find_runnable
from app.run_inputs import InputProblems, RunInputs, parse_form, parse_json_body
from app.run_service import Submission
from app.schemas import RunOut, RunPage
from app.services import Services
from app.webhooks import check_webhook_url
from db import crud_apps, crud_runs
from db.crud_apps import RunnableVersion
from db.models import FINAL_STATUSES
from publisher import AppSpec
from runtimes.pool import QueueFullError

router = APIRouter(tags=["runs"])
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
_KEEPALIVE_S = 15.0
RUN_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "timed_out")


def _runnable_version(session: Session, request: Request, services: Services, slug: str,
                      number: int | None) -> tuple[Caller, RunnableVersion, AppSpec]:
    caller = identify_caller(session, request)
    version = find_runnable(session, slug, number)
    require_runner(caller, public=version.public)
    if services.engines.state == "failed":
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            detail=f"No engine can run this: {services.engines.error}", headers={"Retry-After": "60"})
    return caller, version, services.runs.spec_of(session, version.version_id)


def _unfit(problems: list[dict[str, Any]]) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                         detail={"message": "The inputs do not fit this app", "problems": problems})


def _submission(caller: Caller, version: RunnableVersion, inputs: RunInputs, services: Services,
                idempotency_key: str | None) -> Submission:
    if inputs.webhook:
        try:
            check_webhook_url(inputs.webhook, allow_private=services.settings.allow_private_webhooks)
        except ValueError as exc:
            raise _unfit([{"input": "webhook", "message": str(exc)}]) from None
    # Anonymous callers share no identity: their Idempotency-Key only matches the same inputs.
    key_scope = caller.scope if caller.key_id is not None else f"public:{_digest(inputs.values, inputs.uploads)}"
    return Submission(version=version, values=inputs.values, uploads=inputs.uploads, key_scope=key_scope,
                      api_key_id=caller.key_id, idempotency_key=idempotency_key, webhook_url=inputs.webhook)


def _json_submission(session: Session, request: Request, services: Services, slug: str, number: int | None,
                     body: bytes, idempotency_key: str | None) -> Submission:
    """Every JSON submission's path, in the thread that records the run: one trip to the database for the
    caller, the app, its version and the run."""
    caller, version, spec = _runnable_version(session, request, services, slug, number)
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        raise _unfit([{"input": "(body)", "message": "the body is not valid JSON"}]) from None
    try:
        inputs = parse_json_body(spec, data, services.settings.max_upload_bytes)
    except InputProblems as exc:
        raise _unfit(exc.problems) from None
    return _submission(caller, version, inputs, services, idempotency_key)


async def _submit(request: Request, services: Services, slug: str, number: int | None,
                  idempotency_key: str | None) -> RunOut:
    prepare: Callable[[Session], Submission]
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        # Files are read from the request asynchronously, so the lookup comes first, in a trip of its own.
        caller, version, spec = await services.db(_runnable_version, request, services, slug, number)
        try:
            inputs = await parse_form(spec, await request.form(), services.settings.max_upload_bytes)
        except InputProblems as exc:
            raise _unfit(exc.problems) from None
        ready = _submission(caller, version, inputs, services, idempotency_key)

        def prepare(_: Session) -> Submission:
            return ready
    else:
        body = await request.body()

        def prepare(session: Session) -> Submission:
            return _json_submission(session, request, services, slug, number, body, idempotency_key)
    try:
        sub, run, created = await services.runs.submit_prepared(prepare)
    except QueueFullError as exc:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                            detail=f"The queue is full ({services.settings.max_queue} runs); retry later.",
                            headers={"Retry-After": str(int(exc.retry_after + 0.999))}) from None
    if created:  # known without reading it back: just queued, no outputs yet
        return RunOut.of(run, slug=sub.version.slug, version=sub.version.number, artifacts=[],
                         queue_position=services.runs.pool.position(run.id))
    return await services.db(_current, services, run.id)  # an earlier submission with this Idempotency-Key


def _digest(values: dict[str, Any], uploads: dict[str, tuple[str, bytes]]) -> str:
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode())
    for name in sorted(uploads):
        digest.update(name.encode() + uploads[name][1])
    return digest.hexdigest()[:32]


def _current(session: Session, services: Services, run_id: str) -> RunOut:
    return services.runs.view(session, crud_runs.get_run(session, run_id=run_id))


def _accepted(out: RunOut) -> Response:
    code = status.HTTP_200_OK if out.status in FINAL_STATUSES else status.HTTP_202_ACCEPTED
    return _json(out, code, headers={"Location": f"/api/runs/{out.id}"})


def _json(out: RunOut, code: int = status.HTTP_200_OK, headers: dict[str, str] | None = None) -> Response:
    # Serialized straight to JSON bytes: the model is already valid, FastAPI's response_model would check it again.
    return Response(out.model_dump_json(), status_code=code, headers=headers, media_type="application/json")


_RUN_DOC = ("Inputs as JSON `{\"inputs\": {...}, \"webhook\": url?}` (images as base64 or data URLs) or as "
            "multipart form fields and files. Each app's typed body is in its own section of /docs.")


@router.post("/api/apps/{slug}/run", summary="Run and wait", description=_RUN_DOC, include_in_schema=False)
@router.post("/api/apps/{slug}/versions/{number}/run", summary="Run a pinned version and wait",
             description=_RUN_DOC)
async def run_sync(request: Request, slug: str, services: ServicesDep, idempotency_key: IdempotencyKey = None,
                   number: int | None = None) -> Response:
    """Waits up to the server's sync limit (60 s by default, --sync-wait): 200 with the finished run, or 202
    with the run id to poll when it takes longer."""
    submitted = await _submit(request, services, slug, number, idempotency_key)
    if submitted.status in FINAL_STATUSES:
        return _accepted(submitted)
    final = await services.runs.wait(submitted.id, services.settings.sync_wait_s)
    # The run as its end was recorded; read again only when it ended elsewhere or is still going.
    return _accepted(final or await services.db(_current, services, submitted.id))


@router.post("/api/apps/{slug}/runs", summary="Queue a run", description=_RUN_DOC, include_in_schema=False)
@router.post("/api/apps/{slug}/versions/{number}/runs", summary="Queue a run of a pinned version",
             description=_RUN_DOC)
async def run_async(request: Request, slug: str, services: ServicesDep, idempotency_key: IdempotencyKey = None,
                    number: int | None = None) -> Response:
    """202 with the run id at once; follow it at /api/runs/{id} or /api/runs/{id}/events."""
    return _accepted(await _submit(request, services, slug, number, idempotency_key))


def _readable_run(session: Session, caller: Caller, run_id: str) -> Row[Any]:
    """Run ids are random: knowing one is enough to read the run, as with its output links; a private
    app's runs still need a key."""
    run = crud_runs.run_and_access(session, run_id=run_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"No run '{run_id}'.")
    require_runner(caller, public=run.app_public)
    return run


def _may_cancel(caller: Caller, run: Row[Any]) -> None:
    if not caller.admin and run.api_key_id != caller.key_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="Only the key that submitted a run, or an admin "
                                                              "key, may cancel it.")


def _readable_view(session: Session, services: Services, caller: Caller, run_id: str) -> RunOut:
    return services.runs.view(session, _readable_run(session, caller, run_id))


def _status(session: Session, services: Services, request: Request, run_id: str) -> RunOut:
    # The caller and the run in one trip to the database: status polling is the API's most frequent request.
    return _readable_view(session, services, identify_caller(session, request), run_id)


@router.get("/api/runs/{run_id}", response_model=RunOut)
async def get_run(run_id: str, request: Request, services: ServicesDep) -> Response:
    """Status, progress, queue position, timings, inputs as applied, outputs, error."""
    return _json(await services.db(_status, services, request, run_id))


@router.post("/api/runs/{run_id}/cancel")
async def cancel_run(run_id: str, services: ServicesDep, caller: CallerDep) -> RunOut:
    """Removes a queued run; interrupts a running one on its engine."""
    run = await services.db(_readable_run, caller, run_id)
    _may_cancel(caller, run)
    if run.status not in FINAL_STATUSES:
        await services.runs.cancel(run_id)
        if final := await services.runs.wait(run_id, 30):
            return final
    return await services.db(_current, services, run_id)


@router.get("/api/runs")
async def list_runs(services: ServicesDep, caller: CallerDep, app: str | None = None,
              status_: Annotated[str | None, Query(alias="status")] = None,
              limit: Annotated[int, Query(ge=1, le=200)] = 50, before: str | None = None) -> RunPage:
    """Run history, newest first; page with ?before=<next_before>. Admin keys see every run; other keys
    see the runs they submitted."""
    if caller.key_id is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="Run history needs an API key.",
                            headers={"WWW-Authenticate": "Bearer"})
    if status_ is not None and status_ not in RUN_STATUSES:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail=f"status must be one of {', '.join(RUN_STATUSES)}")

    def page(session: Session) -> RunPage:
        app_id = None
        if app is not None:
            found = crud_apps.get_app(session, slug=app, include_deleted=True)  # history outlives unpublishing
            if found is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"No app '{app}'.")
            app_id = found.id
        runs = crud_runs.list_runs(session, app_id=app_id, status=status_, limit=limit, before=before,
                                   api_key_id=None if caller.admin else caller.key_id)
        files = crud_runs.artifacts_by_run(session, run_ids=[r.id for r in runs])
        return RunPage(runs=[services.runs.view(session, r, files.get(r.id, [])) for r in runs],
                       next_before=runs[-1].id if len(runs) == limit else None)

    return await services.db(page)


@router.get("/api/runs/{run_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def run_events(run_id: str, request: Request, services: ServicesDep, caller: CallerDep) -> StreamingResponse:
    """Server-sent events: `status` (the run now), `started`, `progress` {node, value, max}, `preview`
    {mime, data (base64)}, `retrying`, and `completed` (the final run) after which the stream ends."""
    queue = services.runs.events.subscribe(run_id)  # before reading the state: no event falls in between
    try:
        first = await services.db(_readable_view, services, caller, run_id)
    except BaseException:
        services.runs.events.unsubscribe(run_id, queue)
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
                    final = await services.db(_current, services, run_id)
                    yield _sse("completed", final.model_dump(mode="json"))
                    return
                yield _sse(event["event"], {k: v for k, v in event.items() if k != "event"})
        finally:
            services.runs.events.unsubscribe(run_id, queue)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"
