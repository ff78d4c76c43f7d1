"""A loopback RunPod: the REST API v2 that deploys use (/v2/templates, /v2/serverless) and the job API that runs
use (/v2/{endpoint_id}/run, /status/{id}, /cancel/{id}, /health), in RunPod's own shapes, served by uvicorn in a
thread. Point RUNPOD_REST_URL and RUNPOD_ENDPOINT_BASE_URL at it (`env()`).

REST: bearer key checked (401 problem+json), bodies validated as the v2 OpenAPI spec says (required fields, types,
ranges, no unknown properties: 422 with one field error per problem), create 201, delete 204, lists wrapped
({"templates": [...]}, {"endpoints": [...]}); an endpoint keeps no link to its template (a templateId in a create
or PATCH applies the template's image and env once), and a template an endpoint was made from cannot be deleted
(400). Template names are unique here (RunPod's v1 spec said so; v2 does not say).

Jobs run the given worker `handler(job) -> dict` (job = {"id", "input"}, sync or async, as the runpod SDK calls
it) through the SDK's own `rp_job.run_job`, so its result rules apply: a returned dict's "error" is popped and the
job is FAILED with it (the rest of the dict stays as output unless keep_failed_output=False, since whether the
platform keeps it is unconfirmed), a raised exception makes the SDK's JSON error string. A job shows IN_QUEUE for
`queue_s`, then IN_PROGRESS; a cancel cancels the handler's task (CANCELLED); the endpoint's `timeout` (ms) or the
request's policy.executionTimeout ends it as TIMED_OUT.

Progress: on the platform, `runpod.serverless.progress_update(job, value)` makes GET /status show `value` under
"output" while IN_PROGRESS. Here a handler calls this module's `progress_update(job, value)` (same signature)
instead; it reaches the cloud through a context variable the job's task carries. (A handler written against the SDK
can be pointed at it by setting `runpod.serverless.progress_update` to it for the test: off the platform the SDK's
own posts to a placeholder URL and is lost.) `put_object` stands in for an S3
bucket behind presigned URLs (a GET that also sends an Authorization header is refused, as S3 refuses it).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

KEY = "rpa_LOOPBACK" + "K" * 32  # the key this cloud accepts unless told another

Handler = Callable[[dict[str, Any]], Any]
Check = Callable[[Any, str], list[str]]


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    body: Any
    authorized: bool


@dataclass
class CloudJob:
    id: str
    endpoint_id: str
    input: Any
    timeout_s: float
    status: str = "IN_QUEUE"
    output: Any = None
    error: str | None = None
    progress: Any = None
    submitted: float = field(default_factory=time.monotonic)
    started: float | None = None
    ended: float | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def view(self) -> dict[str, Any]:
        """GET /status as the platform answers it (absent fields left out)."""
        body: dict[str, Any] = {"id": self.id, "status": self.status}
        if self.started is not None:
            body["delayTime"] = round((self.started - self.submitted) * 1000)
            body["executionTime"] = round(((self.ended or time.monotonic()) - self.started) * 1000)
            body["workerId"] = "loopback-worker"
        if self.status == "IN_PROGRESS" and self.progress is not None:
            body["output"] = self.progress
        elif self.status in ("COMPLETED", "FAILED") and self.output is not None:
            body["output"] = self.output
        if self.error is not None:
            body["error"] = self.error
        return body


_RUNNING: contextvars.ContextVar[CloudJob] = contextvars.ContextVar("runpod_cloud_job")


def progress_update(job: dict[str, Any], progress: Any) -> None:
    """The loopback's `runpod.serverless.progress_update`: GET /status shows `progress` as the job's output while it
    is IN_PROGRESS. Only for handlers this cloud runs."""
    running = _RUNNING.get(None)
    if running is None or running.id != job["id"]:
        raise RuntimeError("progress_update: not called from a handler the loopback RunPod cloud is running")
    running.progress = progress


class _Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, errors: list[str] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.errors, self.headers = status, title, detail, errors, headers


class RunPodCloud:
    def __init__(self, handler: Handler | None = None, *, api_key: str = KEY, queue_s: float = 0.05,
                 keep_failed_output: bool = True) -> None:
        self.handler = handler
        self.api_key = api_key
        self.queue_s = queue_s
        self.keep_failed_output = keep_failed_output
        self.requests: list[Recorded] = []
        self.templates: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, CloudJob] = {}
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.secrets: dict[str, dict[str, Any]] = {}  # id -> {"id", "name", "description", "value"}
        self.fail_next: tuple[int, dict[str, str]] | None = None  # (status, headers): the next REST call's answer
        self._made_from: dict[str, str] = {}  # endpoint id -> the template it was made from (for delete's 400)
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(self._app(), log_level="warning", lifespan="off",
                                                     timeout_graceful_shutdown=1))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    @property
    def rest_url(self) -> str:
        return f"{self.url}/v2"

    def env(self) -> dict[str, str]:
        return {"RUNPOD_REST_URL": self.rest_url, "RUNPOD_ENDPOINT_BASE_URL": f"{self.url}/v2"}

    def job_url(self, endpoint_id: str) -> str:
        return f"{self.url}/v2/{endpoint_id}"

    def add_endpoint(self, name: str = "loopback", *, timeout_ms: int = 600_000) -> str:
        """An endpoint made without the REST API (for runner tests); its id."""
        endpoint = self._new_endpoint({"name": name, "type": "QUEUE", "image": "loopback/worker:1",
                                       "gpu": {"pools": ["ADA_24"]}, "scaling": {"type": "QUEUE_DELAY",
                                                                                 "queueDelay": 4},
                                       "timeout": timeout_ms})
        return endpoint["id"]

    def put_object(self, name: str, data: bytes, mime: str = "application/octet-stream") -> str:
        """Store `data` in the loopback bucket; a presigned-style URL for it."""
        self.objects[name] = (data, mime)
        return f"{self.url}/bucket/{name}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature={secrets.token_hex(8)}"

    def expire(self, job_id: str) -> None:
        """Forget a job, as RunPod does when its results or TTL run out: /status answers 404."""
        self.jobs.pop(job_id, None)

    def bodies(self, method: str, path_part: str) -> list[Any]:
        return [r.body for r in self.requests if r.method == method and path_part in r.path]

    def __enter__(self) -> RunPodCloud:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the loopback RunPod cloud did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    # The server.

    def _app(self) -> FastAPI:
        app = FastAPI()
        cloud = self

        @app.exception_handler(_Problem)
        async def problem(_: Request, exc: _Problem) -> JSONResponse:
            body: dict[str, Any] = {"title": exc.title, "status": exc.status, "detail": exc.detail}
            if exc.errors:
                body["errors"] = exc.errors
            return JSONResponse(body, exc.status, headers=exc.headers, media_type="application/problem+json")

        @app.get("/v2/templates")
        async def list_templates(request: Request) -> Any:
            await cloud._take(request)
            return {"templates": list(cloud.templates.values())}

        @app.post("/v2/templates", status_code=201)
        async def create_template(request: Request) -> Any:
            body = _valid(await cloud._take(request), CREATE_TEMPLATE)
            if any(t["name"] == body["name"] for t in cloud.templates.values()):
                raise _Problem(400, "Bad Request", f"template name must be unique: '{body['name']}' is taken")
            template = {"id": _new_id(), "name": body["name"], "image": body["image"], "args": "", "disk": 50,
                        "mounts": {}, "ports": [], "env": {}, "registry": None, "serverless": False,
                        "public": False, "category": "NVIDIA", "startSsh": True, "startJupyter": True,
                        "allowedCudaVersions": []}
            template.update(body)
            cloud.templates[template["id"]] = template
            return template

        @app.get("/v2/templates/{template_id}")
        async def get_template(template_id: str, request: Request) -> Any:
            await cloud._take(request)
            return cloud._found(cloud.templates, template_id, "template")

        @app.patch("/v2/templates/{template_id}")
        async def update_template(template_id: str, request: Request) -> Any:
            body = await cloud._take(request)
            template = cloud._found(cloud.templates, template_id, "template")
            template.update(_valid(body, UPDATE_TEMPLATE))
            return template

        @app.delete("/v2/templates/{template_id}", status_code=204)
        async def delete_template(template_id: str, request: Request) -> Response:
            await cloud._take(request)
            cloud._found(cloud.templates, template_id, "template")
            if template_id in cloud._made_from.values():
                raise _Problem(400, "Bad Request", "Template is in use by a pod or serverless endpoint and cannot "
                                                   "be deleted")
            del cloud.templates[template_id]
            return Response(status_code=204)

        @app.get("/v2/secrets")
        async def list_secrets(request: Request) -> Any:
            await cloud._take(request)
            return {"secrets": [{k: v for k, v in secret.items() if k != "value"} for secret in cloud.secrets.values()]}

        @app.post("/v2/secrets", status_code=201)
        async def create_secret(request: Request) -> Any:
            body = _valid(await cloud._take(request), CREATE_SECRET)
            if body["name"].upper().startswith("RUNPOD"):
                raise _Problem(422, "Unprocessable Entity", "Request validation failed.",
                               ["$.name: names beginning with RUNPOD are reserved"])
            if any(s["name"] == body["name"] for s in cloud.secrets.values()):
                raise _Problem(409, "Conflict", f"a secret named '{body['name']}' exists")
            secret = {"id": _new_id(), "name": body["name"], "description": body.get("description", ""),
                      "value": body["value"]}
            cloud.secrets[secret["id"]] = secret
            return {k: v for k, v in secret.items() if k != "value"}  # write-only

        @app.patch("/v2/secrets/{secret_id}")
        async def update_secret(secret_id: str, request: Request) -> Any:
            body = _valid(await cloud._take(request), UPDATE_SECRET)
            secret = cloud._found(cloud.secrets, secret_id, "secret")
            secret.update(body)
            return {k: v for k, v in secret.items() if k != "value"}

        @app.get("/v2/serverless")
        async def list_endpoints(request: Request) -> Any:
            await cloud._take(request)
            return {"endpoints": list(cloud.endpoints.values())}

        @app.post("/v2/serverless", status_code=201)
        async def create_endpoint(request: Request) -> Any:
            body = _valid(await cloud._take(request), CREATE_ENDPOINT)
            if ("gpu" in body) == ("cpu" in body):
                raise _Problem(400, "Bad Request", "specify exactly one of gpu or cpu")
            if "templateId" not in body and "image" not in body:
                raise _Problem(422, "Unprocessable Entity", "Request validation failed.",
                               ["$: missing property 'image' (required unless templateId is set)"])
            return cloud._new_endpoint(body)

        @app.get("/v2/serverless/{endpoint_id}")
        async def get_endpoint(endpoint_id: str, request: Request) -> Any:
            await cloud._take(request)
            return cloud._found(cloud.endpoints, endpoint_id, "endpoint")

        @app.patch("/v2/serverless/{endpoint_id}")
        async def update_endpoint(endpoint_id: str, request: Request) -> Any:
            body = await cloud._take(request)
            endpoint = cloud._found(cloud.endpoints, endpoint_id, "endpoint")
            return cloud._update_endpoint(endpoint, _valid(body, UPDATE_ENDPOINT))

        @app.delete("/v2/serverless/{endpoint_id}", status_code=204)
        async def delete_endpoint(endpoint_id: str, request: Request) -> Response:
            await cloud._take(request)
            cloud._found(cloud.endpoints, endpoint_id, "endpoint")
            del cloud.endpoints[endpoint_id]
            cloud._made_from.pop(endpoint_id, None)
            return Response(status_code=204)

        @app.post("/v2/{endpoint_id}/run")
        async def run(endpoint_id: str, request: Request) -> Any:
            body = await cloud._take(request, job_api=True)
            endpoint = cloud.endpoints.get(endpoint_id)
            if endpoint is None:
                return JSONResponse({"error": f"endpoint {endpoint_id} not found"}, 404)
            if not isinstance(body, dict) or "input" not in body:
                return JSONResponse({"error": "input is required"}, 400)
            timeout_ms = (body.get("policy") or {}).get("executionTimeout") or endpoint["timeout"]
            job = CloudJob(f"{uuid.uuid4()}-u1", endpoint_id, body["input"], timeout_ms / 1000)
            cloud.jobs[job.id] = job
            job.task = asyncio.create_task(cloud._execute(job))
            return {"id": job.id, "status": job.status}

        @app.get("/v2/{endpoint_id}/status/{job_id}")
        async def status(endpoint_id: str, job_id: str, request: Request) -> Any:
            await cloud._take(request, job_api=True)
            job = cloud.jobs.get(job_id)
            if job is None or job.endpoint_id != endpoint_id:
                return JSONResponse({"error": "request does not exist"}, 404)
            return job.view()

        @app.post("/v2/{endpoint_id}/cancel/{job_id}")
        async def cancel(endpoint_id: str, job_id: str, request: Request) -> Any:
            await cloud._take(request, job_api=True)
            job = cloud.jobs.get(job_id)
            if job is None or job.endpoint_id != endpoint_id:
                return JSONResponse({"error": "request does not exist"}, 404)
            if job.status in ("IN_QUEUE", "IN_PROGRESS") and job.task is not None:
                job.task.cancel()
                await asyncio.wait([job.task])
            return {"id": job.id, "status": job.status}

        @app.get("/v2/{endpoint_id}/health")
        async def health(endpoint_id: str, request: Request) -> Any:
            await cloud._take(request, job_api=True)
            jobs = [j for j in cloud.jobs.values() if j.endpoint_id == endpoint_id]
            count = lambda *states: sum(j.status in states for j in jobs)  # noqa: E731
            return {"jobs": {"completed": count("COMPLETED"), "failed": count("FAILED", "TIMED_OUT"),
                             "inProgress": count("IN_PROGRESS"), "inQueue": count("IN_QUEUE"), "retried": 0},
                    "workers": {"idle": 1 - min(1, count("IN_PROGRESS")), "running": min(1, count("IN_PROGRESS"))}}

        @app.get("/bucket/{name:path}")
        async def bucket(name: str, request: Request) -> Response:
            cloud.requests.append(Recorded("GET", request.url.path, None, "authorization" not in request.headers))
            if "authorization" in request.headers:  # S3: a presigned URL and an Authorization header conflict
                return Response("<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed"
                                "</Message></Error>", 400, media_type="application/xml")
            if name not in cloud.objects or "X-Amz-Signature" not in request.query_params:
                return Response("<Error><Code>AccessDenied</Code></Error>", 403, media_type="application/xml")
            data, mime = cloud.objects[name]
            return Response(data, media_type=mime)

        return app

    async def _take(self, request: Request, *, job_api: bool = False) -> Any:
        """Record the request and check its bearer key; its JSON body (None when it has none)."""
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        authorized = request.headers.get("authorization") == f"Bearer {self.api_key}"
        self.requests.append(Recorded(request.method, request.url.path, body, authorized))
        if not authorized:
            if job_api:
                raise _Problem(401, "Unauthorized", "invalid or missing API key")
            missing = "authorization" not in request.headers
            raise _Problem(401, "Unauthorized", "missing bearer token" if missing else "invalid bearer token")
        if raw and isinstance(body, str):
            raise _Problem(400, "Bad Request", "request body is not valid JSON")
        if self.fail_next is not None and not job_api:
            (status, headers), self.fail_next = self.fail_next, None
            raise _Problem(status, HTTPStatus(status).phrase, f"loopback: answering {status} as told", None, headers)
        return body

    def _found(self, items: dict[str, dict[str, Any]], item_id: str, kind: str) -> dict[str, Any]:
        if item_id not in items:
            raise _Problem(404, "Not Found", f"{kind} not found")
        return items[item_id]

    def _from_template(self, body: dict[str, Any]) -> dict[str, Any]:
        """The container settings a templateId brings (image, args, disk, ports, env, registry), body winning."""
        template = self._found(self.templates, body["templateId"], "template")
        if not template["serverless"]:
            raise _Problem(422, "Unprocessable Entity", f"template {template['id']} is not a serverless template")
        settings = {k: template[k] for k in ("image", "args", "disk", "ports", "registry")}
        settings.update({k: body[k] for k in settings if k in body})
        settings["env"] = {**template["env"], **body.get("env", {})}
        return settings

    def _new_endpoint(self, body: dict[str, Any]) -> dict[str, Any]:
        endpoint_id = _new_id()
        container = self._from_template(body) if "templateId" in body else {
            "image": body["image"], "args": body.get("args", ""), "disk": body.get("disk", 20),
            "ports": body.get("ports", []), "registry": body.get("registry"), "env": body.get("env", {})}
        gpu = body.get("gpu")
        endpoint = {
            "id": endpoint_id, "name": body["name"], "type": body["type"],
            "requestUrls": {op: f"{self.url}/v2/{endpoint_id}/{path}" for op, path in (
                ("run", "run"), ("runSync", "runsync"), ("status", "status/{job_id}"),
                ("stream", "stream/{job_id}"), ("cancel", "cancel/{job_id}"), ("retry", "retry/{job_id}"),
                ("purgeQueue", "purge-queue"), ("health", "health"))},
            **container,
            "gpu": None if gpu is None else {"count": 1, "allowedCudaVersions": [], "minCudaVersion": None, **gpu},
            "workers": {"min": 0, "max": 3, "idleTimeout": 10, **body.get("workers", {})},
            "scaling": body["scaling"], "dataCenterIds": body.get("dataCenterIds", []),
            "networkVolumes": body.get("networkVolumes", []), "timeout": body.get("timeout", 300_000),
            "flashboot": body.get("flashboot", "OFF"), "createdAt": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if "cpu" in body:
            endpoint["cpu"] = body["cpu"]
        self.endpoints[endpoint_id] = endpoint
        if "templateId" in body:
            self._made_from[endpoint_id] = body["templateId"]
        return endpoint

    def _update_endpoint(self, endpoint: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        if "templateId" in body:
            endpoint.update(self._from_template(body))
            self._made_from[endpoint["id"]] = body["templateId"]
        for key, value in body.items():
            if key == "gpu":
                gpu = dict(endpoint["gpu"] or {})
                if "pools" in value:  # pools and exclusions are one selection: pools replace both
                    gpu.pop("excludedTypes", None)
                endpoint["gpu"] = {**gpu, **value}
            elif key == "workers":
                endpoint["workers"] = {**endpoint["workers"], **value}
            elif key not in ("templateId", "env") or "templateId" not in body:
                endpoint[key] = value
        return endpoint

    async def _execute(self, job: CloudJob) -> None:
        from runpod.serverless.modules.rp_job import run_job  # the SDK's result rules (imported late: ~2 s)

        _RUNNING.set(job)  # this task's context: the handler's progress_update finds its job here
        try:
            await asyncio.sleep(self.queue_s)
            job.status, job.started = "IN_PROGRESS", time.monotonic()
            if self.handler is None:
                raise RuntimeError("RunPodCloud has no handler to run jobs with")
            result = await asyncio.wait_for(run_job(self.handler, {"id": job.id, "input": job.input}),
                                            job.timeout_s)
        except asyncio.CancelledError:
            job.status = "CANCELLED"
            return
        except TimeoutError:
            job.status = "TIMED_OUT"
            return
        finally:
            job.ended = time.monotonic()
        if "error" in result:
            job.status, job.error = "FAILED", str(result["error"])
            job.output = result.get("output") if self.keep_failed_output else None
        else:
            job.status, job.output = "COMPLETED", result.get("output")


def _new_id() -> str:
    return "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(8))


def _valid(body: Any, check: Check) -> dict[str, Any]:
    problems = check(body, "$")
    if problems:
        raise _Problem(422, "Unprocessable Entity", "Request validation failed.", problems)
    return body


# The v2 request schemas, as checks: each returns its problems as "<json path>: <what is wrong>".

def _typed(kind: type | tuple[type, ...], name: str, test: Callable[[Any], str | None] = lambda _: None) -> Check:
    def check(value: Any, path: str) -> list[str]:
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return [f"{path}: expected {name}"]
        problem = test(value)
        return [f"{path}: {problem}"] if problem else []
    return check


def _string(min_length: int = 0) -> Check:
    return _typed(str, "string", lambda v: f"length must be >= {min_length}" if len(v) < min_length else None)


def _integer(low: int | None = None, high: int | None = None) -> Check:
    def test(value: int) -> str | None:
        if low is not None and value < low:
            return f"must be >= {low}"
        return f"must be <= {high}" if high is not None and value > high else None
    return _typed(int, "integer", test)


def _number(low: float) -> Check:
    return _typed((int, float), "number", lambda v: f"must be >= {low}" if v < low else None)


def _enum(*values: str) -> Check:
    return _typed(str, "string", lambda v: None if v in values else f"value must be one of {list(values)}")


def _array(item: Check, min_items: int = 0) -> Check:
    def check(value: Any, path: str) -> list[str]:
        if not isinstance(value, list):
            return [f"{path}: expected array"]
        if len(value) < min_items:
            return [f"{path}: minimum {min_items} items required"]
        return [p for i, v in enumerate(value) for p in item(v, f"{path}[{i}]")]
    return check


def _nullable(inner: Check) -> Check:
    return lambda value, path: [] if value is None else inner(value, path)


def _object(properties: dict[str, Check], required: tuple[str, ...] = ()) -> Check:
    def check(value: Any, path: str) -> list[str]:
        if not isinstance(value, dict):
            return [f"{path}: expected object"]
        problems = [f"{path}: missing property '{name}'" for name in required if name not in value]
        problems += [f"{path}: additional properties '{key}' not allowed" for key in value if key not in properties]
        problems += [p for key, v in value.items() if key in properties for p in properties[key](v, f"{path}.{key}")]
        return problems
    return check


_BOOLEAN = _typed(bool, "boolean")


def _any_object(value: Any, path: str) -> list[str]:
    return [] if isinstance(value, dict) else [f"{path}: expected object"]


def _env(value: Any, path: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{path}: expected object"]
    return [f"{path}.{k}: expected string" for k, v in value.items() if not isinstance(v, str)]


def _scaling(value: Any, path: str) -> list[str]:
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "REQUEST_COUNT":
        return _object({"type": _string(), "requestCount": _integer(1)}, ("type", "requestCount"))(value, path)
    if kind == "QUEUE_DELAY":
        return _object({"type": _string(), "queueDelay": _number(0.5)}, ("type", "queueDelay"))(value, path)
    return [f"{path}.type: value must be one of ['QUEUE_DELAY', 'REQUEST_COUNT']"]


CONTAINER: dict[str, Check] = {"args": _string(), "disk": _integer(1), "env": _env, "image": _string(),
                               "ports": _array(_string()), "registry": _nullable(_string())}
_CUDA = {"allowedCudaVersions": _array(_string()), "minCudaVersion": _string()}
_GPU = {"pools": _array(_string(), 1), "excludedTypes": _array(_string()), "count": _integer(1), **_CUDA}
_WORKERS = _object({"min": _integer(0), "max": _integer(0), "idleTimeout": _integer(1, 3600)})
_ENDPOINT: dict[str, Check] = {
    **CONTAINER, "name": _string(1), "scaling": _scaling, "cpu": _array(_any_object, 1),
    "dataCenterIds": _array(_string()), "flashboot": _enum("OFF", "FLASHBOOT", "PRIORITY_FLASHBOOT"),
    "networkVolumes": _array(_string()), "templateId": _string(1), "timeout": _integer(), "workers": _WORKERS}
CREATE_ENDPOINT = _object({**_ENDPOINT, "type": _enum("QUEUE", "LOAD_BALANCER"),
                           "gpu": _object(_GPU, ("pools",))}, ("name", "type", "scaling"))
UPDATE_ENDPOINT = _object({**_ENDPOINT, "gpu": _object(_GPU)})  # no `type`: routing cannot change
_TEMPLATE: dict[str, Check] = {
    **CONTAINER, "name": _string(1), "allowedCudaVersions": _array(_string()),
    "category": _enum("CPU", "NVIDIA", "AMD"), "public": _BOOLEAN, "serverless": _BOOLEAN,
    "startJupyter": _BOOLEAN, "startSsh": _BOOLEAN,
    "mounts": _object({"persistent": _object({"size": _integer(10), "path": _string()}, ("size", "path"))})}
CREATE_TEMPLATE = _object(_TEMPLATE, ("name", "image"))
_SECRET_NAME = _typed(str, "string", lambda v: None if re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_.\-/]{0,190}", v) else
                      "must match ^[a-zA-Z_][a-zA-Z0-9_.\\-/]*$ (at most 191 characters)")
CREATE_SECRET = _object({"name": _SECRET_NAME, "value": _string(1), "description": _string()}, ("name", "value"))
UPDATE_SECRET = _object({"value": _string(1), "description": _string()})
UPDATE_TEMPLATE = _object(_TEMPLATE)
