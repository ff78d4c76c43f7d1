"""A deployment's Comfy API v2 (spec/openapi.yaml of comfy-sdk 2.0.0): the deployment's URL is a v2 base URL, as
Comfy's own serverless deployments are, for the one app version baked into the image.

    POST /api/v2/jobs                  the app's published workflow, only its published inputs changed -> 201 Job
    GET  /api/v2/jobs/{id}             the Job (poll-first: the truth)
    GET  /api/v2/jobs/{id}/workflow    {"format": "api", "workflow": the graph as submitted}
    GET  /api/v2/jobs/{id}/events      SSE: status on connect and on change, each output, the terminal status
    POST /api/v2/jobs/{id}/cancel
    POST /api/v2/assets (multipart), HEAD /api/v2/assets/by-hash/{hash}, POST /api/v2/assets/from-hash,
    GET /api/v2/assets/{id}, GET /api/v2/assets/{id}/content (Range), DELETE /api/v2/assets/{id}
    GET  /api/v2/health                (no key)

A job is one `jobs.spawn()` of the worker with the typed API's payload (images as base64), so the worker is the same
for both APIs. Modal gives the endpoint spawn/result only: a job reads `queued` until its result is in (no
`running`, no progress, no previews); its outputs become assets when the endpoint first sees the result.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from publisher import AppSpec
from publisher.app_workflow_guard import AppWorkflowError, is_asset_reference
from publisher.appspec import AppInput
from publisher.quoting import quote
from publisher.workflow import WorkflowFormatError
from runtimes import v2wire
from runtimes.inputs import ImageLimits, InputProblems, check_image, own_files
from runtimes.modal.container.jobs import Jobs
from runtimes.modal.container.v2store import (
    ASSET_RETENTION_S,
    JOB_RETENTION_S,
    AssetRecord,
    AssetStore,
    JobStore,
    blake3_of,
    hex_of,
    output_asset_id,
)
from runtimes.serverless.workflow_inputs import inputs_from_workflow, node_errors, where

log = logging.getLogger(__name__)

EVENTS_POLL_S = 0.25
KEEPALIVE_S = 15.0
MAX_FILE_PATH = 255
FORM_OVERHEAD = 64 * 1024  # an upload's form fields and part headers, besides the file


# The contract documents 422 for a request it cannot take (a validation failure); 400 is in no operation's answers.
STATUS_OF = {**v2wire.STATUS_OF, "invalid_request": 422}


class V2Error(Exception):
    """An error answered in the v2 envelope, with the contract's code (and its status unless given)."""

    def __init__(self, code: str, message: str, *, details: dict[str, Any] | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details
        self.status = status or STATUS_OF.get(code, 422)


def install_v2(api: FastAPI, spec: AppSpec, jobs: Jobs, assets: AssetStore, records: JobStore, *,
               authorized: Callable[..., Coroutine[Any, Any, None]]) -> None:
    """Add the v2 routes to a deployment's endpoint (behind its bearer key) and answer their errors in the
    envelope."""
    api.include_router(_health())
    api.include_router(_routes(spec, jobs, assets, records), dependencies=[Depends(authorized)])
    _install_errors(api)


def _health() -> APIRouter:
    routes = APIRouter(prefix=v2wire.API_PREFIX)

    @routes.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "healthy"}

    return routes


def _routes(spec: AppSpec, jobs: Jobs, assets: AssetStore, records: JobStore) -> APIRouter:
    routes = APIRouter(prefix=v2wire.API_PREFIX)
    view = _JobView(jobs, assets, records)

    # --- jobs ---------------------------------------------------------------------------------------------

    @routes.post("/jobs", status_code=201)
    async def submit(request: Request) -> dict[str, Any]:
        try:  # extra_data is checked, not used: a deployment's engine runs with its API nodes off
            workflow = v2wire.job_request(await _json_object(request), workflow_hint=(
                "send the app's workflow (GET /api/app) with only its inputs changed.")).workflow
        except v2wire.JobRequestError as exc:
            raise V2Error(exc.code, exc.message) from None
        inputs = await _inputs_of(spec, assets, workflow)
        now = time.time()
        key = request.headers.get("idempotency-key")
        if key and not await records.claim_key(key, now=now):
            raise V2Error("idempotency_key_reuse", f"Idempotency-Key {quote(key)} was used before: it is single-use. "
                                                   "Poll the job it created, or send a new key.")
        job = {"id": str(uuid.uuid4()), "call_id": None, "workflow": workflow, "created_at": now,
               "expires_at": now + JOB_RETENTION_S, "cancel_requested": False, "final": None}
        await records.save(job)  # recorded before any work starts
        try:
            job["call_id"] = await jobs.spawn({"run_id": job["id"], "inputs": inputs})
        except Exception:
            log.exception("spawning job %s failed", job["id"])
            await records.delete(job["id"])
            if key:
                await records.release_key(key)
            raise V2Error("upstream_error", "The deployment could not start the job; try again.") from None
        await records.save(job)
        return await view.body(request, job)

    @routes.get("/jobs/{job_id}")
    async def get_job(job_id: str, request: Request) -> dict[str, Any]:
        return await view.body(request, await view.job(job_id))

    @routes.get("/jobs/{job_id}/workflow")
    async def get_workflow(job_id: str) -> dict[str, Any]:
        return {"format": "api", "workflow": (await view.job(job_id))["workflow"]}

    @routes.post("/jobs/{job_id}/cancel")
    async def cancel(job_id: str, request: Request) -> dict[str, Any]:
        job = await view.job(job_id)
        job = await view.settle(job)
        if job["final"] is None:
            job["cancel_requested"] = True
            await records.save(job)
            if job["call_id"] is not None:
                await jobs.cancel(job["call_id"])
            job = await view.settle(job)
        return await view.body(request, job)

    @routes.get("/jobs/{job_id}/events")
    async def events(job_id: str, request: Request) -> StreamingResponse:
        job = await view.job(job_id)
        return StreamingResponse(view.stream(request, job), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # --- assets -------------------------------------------------------------------------------------------

    @routes.post("/assets")
    async def upload(request: Request) -> JSONResponse:
        try:
            bounded = await _bounded(request, assets.max_bytes + FORM_OVERHEAD)
            form = await bounded.form(max_files=1, max_fields=32)
        except V2Error:
            raise
        except Exception as exc:  # a body that is not multipart/form-data
            raise V2Error("invalid_request", f"send multipart/form-data with 'file', 'content_type' and "
                                             f"'file_path' ({exc})") from None
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise V2Error("invalid_request", "the 'file' part is missing: send the bytes as a file part")
        data = await upload.read(assets.max_bytes + 1)
        if len(data) > assets.max_bytes:
            raise _too_large(assets.max_bytes)
        file_path = _file_path(str(form.get("file_path") or upload.filename or ""))
        expected = form.get("expected_hash")
        hash = blake3_of(data)
        if isinstance(expected, str) and expected and expected.lower() != hash:
            raise V2Error("hash_mismatch", f"expected_hash {quote(expected)} does not match the bytes received "
                                           f"({hash}); no asset was minted", details={"hash": hash})
        content_type = _image_type(file_path, data, assets.max_bytes)
        record, created_new = await assets.add(data, content_type=content_type, file_path=file_path,
                                               expires_at=time.time() + _expires_in(form.get("expires_in")))
        return JSONResponse(_asset(request, record, created_new=created_new), status_code=201 if created_new else 200)

    @routes.head("/assets/by-hash/{hash}")
    async def has_blob(hash: str) -> Response:
        found = hex_of(hash) is not None and await assets.blob(hash) is not None
        return Response(status_code=200 if found else 404)

    @routes.post("/assets/from-hash")
    async def from_hash(request: Request) -> JSONResponse:
        body = await _json_object(request)
        hash = body.get("hash")
        if not isinstance(hash, str) or hex_of(hash) is None:  # a hash of no blob: the contract's miss
            raise V2Error("blob_not_found", f"No stored bytes with hash {quote(hash)}: hashes are written "
                                            "blake3:<64 hex digits>; upload the file (POST /api/v2/assets).")
        file_path = _file_path(str(body["file_path"])) if body.get("file_path") else None
        minted = await assets.mint(hash, file_path=file_path,
                                   expires_at=time.time() + _expires_in(body.get("expires_in")))
        if minted is None:
            raise V2Error("blob_not_found", f"No stored bytes with hash {hash}: upload the file (POST /api/v2/assets).")
        record, new = minted
        return JSONResponse(_asset(request, record, created_new=False), status_code=201 if new else 200)

    @routes.get("/assets/{asset_id}")
    async def get_asset(asset_id: str, request: Request) -> dict[str, Any]:
        return _asset(request, await _asset_record(assets, asset_id))

    @routes.get("/assets/{asset_id}/content")
    async def content(asset_id: str, request: Request) -> Response:
        record = await _asset_record(assets, asset_id)
        try:
            data = await assets.read(record)
        except LookupError as exc:
            raise V2Error("not_found", str(exc)) from None
        return _ranged(data, record, request.headers.get("range"))

    @routes.delete("/assets/{asset_id}", status_code=204)
    async def delete_asset(asset_id: str) -> Response:
        record = await _asset_record(assets, asset_id)
        if record.job_id is not None and await records.get(record.job_id) is not None:
            raise V2Error("asset_in_use", "This asset cannot be deleted now.")
        await assets.delete(asset_id)
        return Response(status_code=204)

    return routes


class _JobView:
    """A job record read with its run's outcome: the worker's result, once in, is recorded with the outputs as
    assets (ids derived from the job, so containers that race to record them agree)."""

    def __init__(self, jobs: Jobs, assets: AssetStore, records: JobStore) -> None:
        self.jobs, self.assets, self.records = jobs, assets, records

    async def job(self, job_id: str) -> dict[str, Any]:
        job = await self.records.get(job_id)
        if job is None:
            raise V2Error("not_found", f"No job {quote(job_id)} (or it has expired).")
        return job

    async def settle(self, job: dict[str, Any]) -> dict[str, Any]:
        if job["final"] is not None or job["call_id"] is None:  # done, or still being handed to a worker
            return job
        result = await self.jobs.result(job["call_id"])
        if result is None:
            return job
        status = v2wire.JOB_STATUS_OF_RUN.get(str(result.get("status")), "failed")
        outputs = []
        produced = (result.get("outputs") or []) if status == "succeeded" else []
        for index, item in enumerate(produced):
            record, _ = await self.assets.add(base64.b64decode(item["data"]), content_type=item["mime"],
                                              file_path=item["filename"], expires_at=job["expires_at"],
                                              job_id=job["id"], asset_id=output_asset_id(job["id"], index))
            outputs.append({"node_id": str(item["node_id"]), "name": item["filename"], "kind": item["kind"],
                            "asset": record.to_dict()})
        job["final"] = {"status": status, "outputs": outputs, "error": v2wire.job_error(result.get("error")),
                        "completed_at": time.time(), "exec_ms": result.get("exec_ms")}
        await self.records.save(job)
        return job

    def status(self, job: dict[str, Any]) -> str:
        if job["final"] is not None:
            return str(job["final"]["status"])
        return "canceling" if job["cancel_requested"] else "queued"

    def outputs(self, request: Request, job: dict[str, Any]) -> list[dict[str, Any]]:
        final = job["final"] or {}
        found = []
        for item in final.get("outputs") or []:
            record = AssetRecord(**item["asset"])
            found.append(v2wire.output_body(
                node_id=item["node_id"], name=item["name"], kind=item["kind"], content_type=record.content_type,
                size_bytes=record.size_bytes, asset_id=record.id, hash=record.hash, url=_content_url(request, record),
                url_expires_at=record.expires_at, job_id=job["id"]))
        return found

    async def body(self, request: Request, job: dict[str, Any]) -> dict[str, Any]:
        job = await self.settle(job)
        final = job["final"] or {}
        exec_ms = final.get("exec_ms")
        return v2wire.job_body(
            job_id=job["id"], status=self.status(job), created_at=job["created_at"], expires_at=job["expires_at"],
            completed_at=final.get("completed_at"), outputs=self.outputs(request, job), error=final.get("error"),
            metrics={"execution_ms": int(exec_ms) if exec_ms is not None else None})

    async def stream(self, request: Request, job: dict[str, Any]) -> AsyncIterator[str]:
        """Status on connect and on change; on the end, each output, then the terminal status."""
        last: str | None = None
        quiet_since = time.monotonic()
        while True:
            if job["final"] is None:
                job = await self.records.get(job["id"]) or job  # another container may have recorded a change
                job = await self.settle(job)
            status = self.status(job)
            if status in v2wire.TERMINAL_STATUSES:
                for output in self.outputs(request, job):
                    yield v2wire.sse_frame("output", output)
                yield v2wire.sse_frame("status", v2wire.status_event(status))
                return
            if status != last:
                yield v2wire.sse_frame("status", v2wire.status_event(status))
                last, quiet_since = status, time.monotonic()
            elif time.monotonic() - quiet_since > KEEPALIVE_S:
                yield v2wire.SSE_KEEPALIVE
                quiet_since = time.monotonic()
            if await request.is_disconnected():
                return
            await asyncio.sleep(EVENTS_POLL_S)


async def _inputs_of(spec: AppSpec, assets: AssetStore, workflow: dict[str, Any]) -> dict[str, Any]:
    """The typed API's inputs for a v2 workflow: the published inputs it sets (guarded: nothing else may differ),
    file inputs resolved to the bytes of the asset they name, then the same checks as the typed API."""

    async def upload_of(item: AppInput, value: Any) -> str | None:
        if isinstance(value, str) and value in own_files(spec, item.name):
            return None  # the app's own file: the worker uses it as published
        if item.type != "image":
            raise V2Error("invalid_workflow", f"{where(item)}: a deployment takes image files only; this "
                                              f"{item.type} input keeps the app's own file")
        record = await _referenced_asset(assets, value, where(item))
        try:
            return base64.b64encode(await assets.read(record)).decode()
        except LookupError as exc:
            raise V2Error("missing_asset", f"{where(item)}: {exc}") from None

    try:
        return await inputs_from_workflow(spec, workflow, upload_of)
    except AppWorkflowError as exc:
        raise V2Error("invalid_workflow", str(exc), details={"node_errors": exc.node_errors()}) from None
    except WorkflowFormatError as exc:
        raise V2Error("invalid_workflow", str(exc)) from None
    except InputProblems as exc:
        raise V2Error("invalid_workflow", f"The inputs do not fit this app: {exc}",
                      details={"node_errors": node_errors(spec, exc.problems), "problems": exc.problems}) from None


async def _referenced_asset(assets: AssetStore, value: Any, where: str) -> AssetRecord:
    if is_asset_reference(value):
        asset_id = str(value["info"]["id"])
        record = await assets.get(asset_id)
        if record is None:
            raise V2Error("missing_asset", f"{where}: no asset {quote(asset_id)} (or it has expired): upload it "
                                           "with POST /api/v2/assets and use the id it returns")
        return record
    record = await assets.by_name(value) if isinstance(value, str) else None
    if record is None:
        raise V2Error("missing_asset", f"{where}: no uploaded file named {quote(value)}: upload it first "
                                       "(POST /api/v2/assets with that file_path), or send a core/ASSET reference")
    return record


async def _bounded(request: Request, limit: int) -> Request:
    """The request with its body read, refused as soon as it passes `limit` bytes (declared or not): nothing
    larger is spooled to disk or held in memory."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit - FORM_OVERHEAD)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit - FORM_OVERHEAD)
        chunks.append(chunk)
    body = b"".join(chunks)
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, replay)


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body(), parse_constant=_no_constant)
    except ValueError as exc:
        raise V2Error("invalid_request", f"the body is not valid JSON: {exc}") from None
    try:
        json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise V2Error("invalid_request", "the body has text that is not Unicode (a lone surrogate \\ud800-\\udfff "
                                         "escape): send UTF-8 text") from None
    if not isinstance(body, dict):
        raise V2Error("invalid_request", "the body must be a JSON object")
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number: send a finite number")


async def _asset_record(assets: AssetStore, asset_id: str) -> AssetRecord:
    record = await assets.get(asset_id)
    if record is None:
        raise V2Error("not_found", f"No asset {quote(asset_id)} (or it has expired).")
    return record


def _file_path(value: str) -> str:
    """A name to find the upload by, never a path on disk here: a plain relative name, no control characters."""
    name = value.strip()
    if not name or len(name) > MAX_FILE_PATH or any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in name) \
            or name.startswith(("/", "\\")) or ".." in name.replace("\\", "/").split("/"):
        raise V2Error("invalid_request", f"file_path {quote(value)} is not a usable file name: send a relative name "
                                         f"such as photo.png (at most {MAX_FILE_PATH} characters, no '..')")
    return name


def _image_type(file_path: str, data: bytes, max_bytes: int) -> str:
    """A deployment's inputs are images: the bytes must be one (checked as the typed API checks them)."""
    try:
        name, _ = check_image("file", file_path, data, ImageLimits(max_bytes=max_bytes))
    except InputProblems as exc:
        raise V2Error("invalid_request", f"{exc.problems[0]['message']}: a deployment's inputs are images",
                      details={"problems": exc.problems}) from None
    ext = name.rsplit(".", 1)[-1]
    return {"jpg": "image/jpeg"}.get(ext, f"image/{ext}")


def _expires_in(value: Any) -> float:
    if value in (None, ""):
        return ASSET_RETENTION_S
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        seconds = -1
    if not 60 <= seconds <= 604800:
        raise V2Error("invalid_request", f"expires_in {quote(value)} must be whole seconds from 60 to 604800")
    return float(seconds)


def _too_large(max_bytes: int) -> V2Error:
    size = f"{max_bytes / 2**20:g} MiB" if max_bytes >= 2**20 else f"{max_bytes} bytes"
    return V2Error("payload_too_large", f"The file is larger than this deployment accepts ({size}).")


def _content_url(request: Request, record: AssetRecord) -> str:
    return str(request.base_url).rstrip("/") + f"{v2wire.API_PREFIX}/assets/{record.id}/content"


def _asset(request: Request, record: AssetRecord, *, created_new: bool | None = None) -> dict[str, Any]:
    return v2wire.asset_body(asset_id=record.id, hash=record.hash, size_bytes=record.size_bytes,
                             content_type=record.content_type, file_path=record.file_path,
                             created_at=record.created_at, url=_content_url(request, record),
                             url_expires_at=record.expires_at, expires_at=record.expires_at, job_id=record.job_id,
                             created_new=created_new)


def _ranged(data: bytes, record: AssetRecord, header: str | None) -> Response:
    headers = {"Accept-Ranges": "bytes", "Content-Disposition": _disposition(record.file_path)}
    if not header:
        return Response(data, media_type=record.content_type, headers=headers)
    unit, _, spec = header.partition("=")
    first, _, last = spec.partition("-")
    size = len(data)
    try:
        if unit.strip() != "bytes" or "," in spec:
            raise ValueError
        if first == "":
            start, end = max(size - int(last), 0), size - 1  # the last N bytes
        else:
            start, end = int(first), min(int(last), size - 1) if last else size - 1
    except ValueError:
        start, end = size, -1
    if start > end or start >= size:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return Response(data[start:end + 1], status_code=206, media_type=record.content_type, headers=headers)


def _disposition(file_path: str | None) -> str:
    """`inline` with the file's name: an ASCII fallback, and the exact name percent-encoded (RFC 6266)."""
    name = (file_path or "file").rsplit("/", 1)[-1]
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
    return f"inline; filename=\"{fallback}\"; filename*=UTF-8''{urllib.parse.quote(name, safe='')}"


def _install_errors(api: FastAPI) -> None:
    """Errors under /api/v2/ in the envelope; the rest of the endpoint keeps FastAPI's own answers."""
    from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler

    async def on_v2_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, V2Error)
        return _envelope(v2wire.error_body(exc.code, exc.message, exc.details), exc.status)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if not request.url.path.startswith(v2wire.API_PREFIX + "/"):
            return await http_exception_handler(request, exc)
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return _envelope(v2wire.error_body(v2wire.CODE_OF.get(exc.status_code, "invalid_request"), detail),
                         exc.status_code, exc.headers)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if not request.url.path.startswith(v2wire.API_PREFIX + "/"):
            return await request_validation_exception_handler(request, exc)
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        return _envelope(v2wire.error_body("invalid_request", "The request does not fit this route.",
                                           {"errors": errors}), 422)

    api.add_exception_handler(V2Error, on_v2_error)
    api.add_exception_handler(StarletteHTTPException, on_http)
    api.add_exception_handler(RequestValidationError, on_validation)


def _envelope(body: dict[str, Any], status: int, headers: Mapping[str, str] | None = None) -> Response:
    """ASCII JSON: an error may quote what the caller sent, whatever it was."""
    return Response(json.dumps(body, ensure_ascii=True, default=str), status_code=status, headers=headers,
                    media_type="application/json")
