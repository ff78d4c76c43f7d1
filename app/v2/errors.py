"""The Comfy API v2's error envelope, `{"error": {"code", "message", "details"?}}`, with the contract's codes.

Routes under a v2 base URL raise V2Error, or the app's own domain errors (app.errors, InputProblems,
QueueFullError): `from_http` translates those for any request under `/api/v2/`, so the one set of handlers
(app.errors.install_error_handlers) answers each surface in its own shape. The codes and their statuses are
runtimes.v2wire's, shared with a Modal deployment's endpoint."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from runtimes.v2wire import CODE_OF, STATUS_OF, error_body

V2_PATH = "/api/v2/"


class V2Error(Exception):
    def __init__(self, code: str, message: str, *, details: dict[str, Any] | None = None,
                 retry_after: int | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.retry_after = retry_after
        self.status = status or STATUS_OF.get(code, 400)


def is_v2(request: Request) -> bool:
    return V2_PATH in request.url.path


def answer(error: V2Error) -> JSONResponse:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    return JSONResponse(error_body(error.code, error.message, error.details), status_code=error.status,
                        headers=headers)


def from_http(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error of the shared code (its status and detail) in the v2 envelope."""
    if isinstance(detail, dict):
        message = str(detail.get("message", ""))
        details = {k: v for k, v in detail.items() if k != "message"} or None
    else:
        message, details = str(detail), None
    retry = (headers or {}).get("Retry-After")
    error = V2Error(CODE_OF.get(status, "invalid_request"), message, details=details,
                    retry_after=int(retry) if retry and retry.isdigit() else None, status=status)
    return answer(error)
