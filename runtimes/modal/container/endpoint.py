"""A deployment's HTTP API (FastAPI, served by Modal's @asgi_app): the same shape as the app's own run API,
for the one app version baked into the image.

    POST /api/runs            {"inputs": {...}, "run_id"?: str}  -> 202 {"id", "run_id", "status": "queued"}
    POST /api/run             the same, waits up to 60 s          -> 200 final run, or 202 to poll
    GET  /api/runs/{id}       status: queued | succeeded | failed | timed_out | cancelled (+ outputs, error)
    GET  /api/runs/{id}/outputs/{index}   an output file
    POST /api/runs/{id}/cancel
    GET  /api/app             the app's inputs and workflow;  GET /health  (no key)
    /api/v2/...               the Comfy API v2 (runtimes/modal/container/v2.py)
Every /api route needs `Authorization: Bearer <key>` (the key lives in a modal.Secret).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import time
import uuid
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse, Response

from publisher import AppSpec
from runtimes.inputs import DEFAULT_MAX_UPLOAD_BYTES, InputProblems, check_values, split_json_inputs
from runtimes.modal.container.jobs import Jobs
from runtimes.modal.container.v2 import install_v2
from runtimes.modal.container.v2store import KV, AssetStore, JobStore, MemoryKV

SYNC_WAIT_S = 60.0
POLL_S = 0.25


def create_endpoint(spec: AppSpec, jobs: Jobs, *, key: str, title: str = "Comfy Publisher deployment",
                    state: KV | None = None, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> FastAPI:
    """`state`: where v2 assets and jobs live, shared by the deployment's endpoint containers (a modal.Dict);
    by default this process's memory (the endpoint served locally)."""
    if not key:
        raise ValueError("the endpoint key is empty: set COMFY_PUBLISHER_ENDPOINT_KEY in the deployment's Secret")
    api = FastAPI(title=title)

    async def authorized(request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="Send 'Authorization: Bearer <endpoint key>'.",
                                headers={"WWW-Authenticate": "Bearer"})

    routes = APIRouter(prefix="/api", dependencies=[Depends(authorized)])

    @api.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @routes.get("/app")
    async def app_info() -> dict[str, Any]:
        return {"inputs": [i.schema() for i in spec.inputs], "outputs": [o.node for o in spec.outputs],
                "timeout_s": spec.timeout_s,
                "workflow": spec.workflow}  # what a Comfy API v2 client sends, its published inputs changed

    async def submit(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise _unprocessable([{"input": "(body)", "message": "the body is not valid JSON"}]) from None
        if not isinstance(body, dict) or not isinstance(body.get("inputs", {}), dict):
            raise _unprocessable([{"input": "(body)", "message": 'send {"inputs": {name: value}}'}])
        inputs = body.get("inputs") or {}
        _check_inputs(spec, inputs)
        run_id = str(body.get("run_id") or uuid.uuid4().hex)
        call_id = await jobs.spawn({"run_id": run_id, "inputs": inputs})
        return {"id": call_id, "run_id": run_id, "status": "queued"}

    @routes.post("/runs", status_code=status.HTTP_202_ACCEPTED)
    async def run_async(request: Request) -> dict[str, Any]:
        return await submit(request)

    @routes.post("/run")
    async def run_sync(request: Request) -> JSONResponse:
        call = await submit(request)
        deadline = time.monotonic() + SYNC_WAIT_S
        while time.monotonic() < deadline:
            result = await jobs.result(call["id"])
            if result is not None:
                return JSONResponse(_public(call["id"], result))
            await asyncio.sleep(POLL_S)
        return JSONResponse(call, status_code=status.HTTP_202_ACCEPTED)

    @routes.get("/runs/{call_id}")
    async def get_run(call_id: str) -> dict[str, Any]:
        result = await jobs.result(call_id)
        return {"id": call_id, "status": "queued"} if result is None else _public(call_id, result)

    @routes.get("/runs/{call_id}/outputs/{index}")
    async def get_output(call_id: str, index: int) -> Response:
        result = await jobs.result(call_id)
        outputs = (result or {}).get("outputs") or []
        if not 0 <= index < len(outputs):
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"Run {call_id} has no output {index}.")
        item = outputs[index]
        return Response(base64.b64decode(item["data"]), media_type=item["mime"],
                        headers={"Content-Disposition": f'inline; filename="{item["filename"]}"'})

    @routes.post("/runs/{call_id}/cancel")
    async def cancel_run(call_id: str) -> dict[str, Any]:
        await jobs.cancel(call_id)
        result = await jobs.result(call_id)
        return {"id": call_id, "status": "cancelling"} if result is None else _public(call_id, result)

    api.include_router(routes)
    kv = state if state is not None else MemoryKV()
    install_v2(api, spec, jobs, AssetStore(kv, max_bytes=max_upload_bytes), JobStore(kv), authorized=authorized)
    return api


def _public(call_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """The result without inline file data: files are fetched from /outputs/{index}."""
    outputs = [{k: v for k, v in o.items() if k != "data"} | {"url": f"/api/runs/{call_id}/outputs/{i}",
                                                             "size": len(base64.b64decode(o["data"]))}
               for i, o in enumerate(result.get("outputs") or [])]
    return {"id": call_id, **{k: v for k, v in result.items() if k != "outputs"}, "outputs": outputs}


def _check_inputs(spec: AppSpec, inputs: dict[str, Any]) -> None:
    """Refuse bad values before a (billed) container is started: the same checks the app does."""
    values, uploads, problems = split_json_inputs(spec, inputs)
    try:
        check_values(spec, values, {name: filename for name, (filename, _) in uploads.items()}, problems)
    except InputProblems as exc:
        raise _unprocessable(exc.problems) from None


def _unprocessable(problems: list[dict[str, Any]]) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                         detail={"message": "The inputs do not fit this app", "problems": problems})
