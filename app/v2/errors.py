"""The Comfy API v2's error envelope, `{"error": {"code", "message", "details"?}}`, with the contract's codes.

Routes under a v2 base URL raise V2Error, or the app's own domain errors (app.errors, InputProblems,
QueueFullError): `envelope_for` translates those for any request under `/api/v2/`, so the one set of handlers
(app.errors.install_error_handlers) answers each surface in its own shape."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

V2_PATH = "/api/v2/"

# The contract's HTTP status for each code it names (ErrorEnvelope in spec/openapi.yaml).
STATUS_OF = {
    "invalid_workflow": 422, "workflow_format_ui": 422, "missing_asset": 422, "idempotency_key_reuse": 422,
    "deployment_stopped": 422, "hash_mismatch": 409, "asset_in_use": 409, "blob_not_found": 404, "not_found": 404,
    "queue_full": 429, "rate_limited": 429, "deployment_not_ready": 429, "too_many_streams": 429,
    "insufficient_credits": 402, "unauthorized": 401, "forbidden": 403, "not_implemented": 501,
    "upstream_error": 502, "payload_too_large": 413, "invalid_request": 400,
}
# The code of each plain HTTP status, for errors raised by code shared with the typed API.
CODE_OF = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "not_found",
           409: "conflict", 413: "payload_too_large", 422: "invalid_request", 429: "queue_full",
           503: "upstream_error"}


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
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.details is not None:
        body["details"] = error.details
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    return JSONResponse({"error": body}, status_code=error.status, headers=headers)


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
