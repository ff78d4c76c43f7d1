"""A cap on request bodies, checked before anything parses them: a body over its cap is answered 413 from its
Content-Length alone, and a chunked body (no Content-Length) is counted as it arrives and cut off at the cap.

Pure ASGI (BaseHTTPMiddleware would cost every request a task and a queue): it wraps `receive` only for chunked
bodies, the rare case. The caps come from --max-upload-mb (`BodyLimits.of`)."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException

from runtimes.media import largest_upload_bytes

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MIB = 2**20
_SLACK = MIB  # headers of the parts, the other fields, the JSON around a base64 image
_WORKFLOW_FLOOR = 16 * MIB  # a workflow is JSON text: a large UI-format file is a few MB
_OTHER = MIB  # keys, deploy settings, the runtime switch, the login form: small JSON or form bodies
_RUN_PATH = re.compile(r"^/api/apps/[^/]+(?:/versions/[^/]+)?/runs?$")
_ASSET_UPLOAD = re.compile(r"^(?:/apps/[^/]+(?:/versions/[^/]+)?)?/api/v2/assets$")  # the Comfy API v2's upload
_WORKFLOW_PATHS = ("/api/apps", "/api/workflows/analyze", "/editor/publish", "/api/v2/jobs")
_UI_PREFIXES = ("/studio", "/apps/")


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a chunked body passes its cap: FastAPI and Starlette let an HTTPException
    through their body parsing, so it becomes the 413 answer wherever the body is read."""

    def __init__(self, message: str) -> None:
        super().__init__(413, detail=message)


@dataclass(frozen=True)
class Cap:
    bytes: int
    what: str  # which bodies this cap is for, as the answer names them

    def message(self, size: int | None, max_upload_mb: float) -> str:
        sent = f"The request body is {size:,} bytes" if size is not None else "The request body is too large"
        return (f"{sent}; {self.what} may be at most {self.bytes:,} bytes ({self.bytes / MIB:.1f} MiB). Send less, "
                f"or start the server with a larger --max-upload-mb (now {max_upload_mb:g}), which sets this cap.")


@dataclass(frozen=True)
class BodyLimits:
    json_run: Cap
    multipart: Cap
    workflow: Cap
    ui_json: Cap
    other: Cap
    max_upload_mb: float

    @classmethod
    def of(cls, max_upload_bytes: int) -> BodyLimits:
        """Caps derived from the largest upload (a video may be larger than an image: runtimes.media): a run's
        JSON body carries its files as base64 (4/3 of their size), a multipart body carries them as they are; a
        workflow has its own floor."""
        largest = largest_upload_bytes(max_upload_bytes)
        json_run = -(-largest * 4 // 3) + _SLACK
        multipart = largest + _SLACK
        workflow = max(_WORKFLOW_FLOOR, -(-max_upload_bytes * 4 // 3) + _SLACK)
        return cls(json_run=Cap(json_run, "a run's JSON body (images as base64 included)"),
                   multipart=Cap(multipart, "a multipart body (the files included)"),
                   workflow=Cap(workflow, "a workflow body (analyze, publish, a v2 job)"),
                   ui_json=Cap(max(json_run, workflow), "a request of the studio or a form"),
                   other=Cap(_OTHER, "this endpoint's body"),
                   max_upload_mb=max_upload_bytes / MIB)

    def for_request(self, method: str, path: str, content_type: str) -> Cap:
        multipart = content_type.startswith("multipart/")
        if path.startswith(_UI_PREFIXES):
            return self.multipart if multipart else self.ui_json
        if method == "POST" and multipart and _ASSET_UPLOAD.match(path):
            return self.multipart
        if method == "POST" and _RUN_PATH.match(path):
            return self.multipart if multipart else self.json_run
        if method == "POST" and path in _WORKFLOW_PATHS:
            return self.workflow
        return self.other


class BodyLimit:
    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app, self.limits = app, limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length, content_type = None, ""
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = int(value) if value.isdigit() else None
            elif name == b"content-type":
                content_type = value.decode("latin-1").lower()
        cap = self.limits.for_request(scope["method"], scope["path"], content_type)
        if length is not None:
            # The server never reads more than the Content-Length it announced: nothing to count.
            if length > cap.bytes:
                await _refuse(send, cap.message(length, self.limits.max_upload_mb), scope["path"])
                return
            await self.app(scope, receive, send)
            return
        await self._counted(scope, receive, send, cap)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, cap: Cap) -> None:
        received, started = 0, False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap.bytes:
                    raise BodyTooLarge(cap.message(None, self.limits.max_upload_mb))
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watched_send)
        except BodyTooLarge as exc:
            if started:  # the app answered already: nothing left to say
                raise
            await _refuse(send, str(exc.detail), scope["path"])


async def _refuse(send: Send, message: str, path: str) -> None:
    # the Comfy API v2 answers in its own envelope (app.v2.errors)
    answer = ({"error": {"code": "payload_too_large", "message": message}} if "/api/v2/" in path
              else {"detail": message})
    body = json.dumps(answer).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
