"""The Comfy API v2's wire shapes (spec/openapi.yaml of comfy-sdk, VERSION 2.0.0), pure and standard-library only,
so every surface that speaks v2 builds the same JSON: the app's own server and a Modal deployment's endpoint (which
cannot import app/).

Job status words, the error envelope and its codes with their HTTP statuses, and builders for the Job, Output,
Asset and SSE frames. No I/O here; callers pass times as epoch seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

API_PREFIX = "/api/v2"

JOB_STATUSES = ("queued", "running", "succeeded", "canceling", "canceled", "failed", "expired")
TERMINAL_STATUSES = frozenset({"succeeded", "canceled", "failed", "expired"})
OUTPUT_TYPES = frozenset({"image", "video", "audio", "text", "file", "latent"})

# The contract's HTTP status for each error code it names (ErrorEnvelope in spec/openapi.yaml; upstream_error is
# the '500' response every operation lists).
STATUS_OF = {
    "invalid_workflow": 422, "workflow_format_ui": 422, "missing_asset": 422, "idempotency_key_reuse": 422,
    "deployment_stopped": 422, "hash_mismatch": 409, "asset_in_use": 409, "blob_not_found": 404, "not_found": 404,
    "queue_full": 429, "rate_limited": 429, "deployment_not_ready": 429, "too_many_streams": 429,
    "insufficient_credits": 402, "unauthorized": 401, "forbidden": 403, "not_implemented": 501,
    "upstream_error": 500, "payload_too_large": 413, "invalid_request": 400,
}
# The code of a plain HTTP status, for errors raised by code shared with other surfaces (auth, routing).
CODE_OF = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "not_found",
           409: "conflict", 413: "payload_too_large", 422: "invalid_request", 429: "queue_full",
           502: "upstream_error", 503: "upstream_error"}

# A run's status (runtimes.contract and a deployment's worker) as a v2 job status.
JOB_STATUS_OF_RUN = {"queued": "queued", "running": "running", "succeeded": "succeeded", "failed": "failed",
                     "timed_out": "failed", "cancelling": "canceling", "cancelled": "canceled",
                     "expired": "expired"}


def iso(epoch_s: float) -> str:
    """An RFC 3339 time with its zone, as the contract's date-time fields are."""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat().replace("+00:00", "Z")


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The error envelope: `{"error": {"code", "message", "details"?}}`."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def job_error(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """A run's error record (runtimes.contract.run_error) as the contract's JobError."""
    if not record:
        return None
    return {"code": str(record.get("type") or "error"), "message": str(record.get("message") or ""),
            "node_id": record.get("node_id"), "class_type": record.get("node_type"), "traceback": None}


def job_urls(job_id: str, prefix: str = API_PREFIX) -> dict[str, str]:
    """Host-relative links the client follows (they carry the surface's own mount prefix)."""
    base = f"{prefix}/jobs/{job_id}"
    return {"self": base, "events": f"{base}/events", "cancel": f"{base}/cancel"}


def job_body(*, job_id: str, status: str, created_at: float, expires_at: float, started_at: float | None = None,
             completed_at: float | None = None, queue_position: int | None = None,
             progress: dict[str, Any] | None = None, outputs: list[dict[str, Any]] | None = None,
             error: dict[str, Any] | None = None, metrics: dict[str, int | None] | None = None,
             prefix: str = API_PREFIX) -> dict[str, Any]:
    if status not in JOB_STATUSES:
        raise ValueError(f"not a v2 job status: {status!r}; one of {JOB_STATUSES}")
    body: dict[str, Any] = {
        "id": job_id, "status": status, "created_at": iso(created_at),
        "started_at": iso(started_at) if started_at is not None else None,
        "completed_at": iso(completed_at) if completed_at is not None else None,
        "expires_at": iso(expires_at), "queue_position": queue_position, "progress": progress,
        "outputs": outputs or [], "error": error, "urls": job_urls(job_id, prefix),
    }
    if metrics is not None:
        body["metrics"] = metrics
    return body


def output_type(kind: str, content_type: str) -> str:
    """The contract's OutputType for an output's kind (or, failing that, its media type)."""
    if kind in OUTPUT_TYPES:
        return kind
    major = content_type.split("/", 1)[0]
    if major in ("image", "video", "audio", "text"):
        return major
    return "file"


def output_body(*, node_id: str, name: str, kind: str, content_type: str, size_bytes: int, asset_id: str,
                hash: str | None, url: str, url_expires_at: float, job_id: str | None) -> dict[str, Any]:
    return {"node_id": node_id, "name": name, "type": output_type(kind, content_type), "content_type": content_type,
            "size_bytes": size_bytes, "id": asset_id, "hash": hash, "url": url, "url_expires_at": iso(url_expires_at),
            "job_id": job_id}


def asset_body(*, asset_id: str, hash: str | None, size_bytes: int, content_type: str, file_path: str | None,
               created_at: float, url: str, url_expires_at: float, expires_at: float | None,
               job_id: str | None = None, created_new: bool | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": asset_id, "hash": hash, "size_bytes": size_bytes, "content_type": content_type, "file_path": file_path,
        "created_at": iso(created_at), "url": url, "url_expires_at": iso(url_expires_at),
        "expires_at": iso(expires_at) if expires_at is not None else None, "job_id": job_id,
    }
    if created_new is not None:
        body["created_new"] = created_new
    return body


def status_event(status: str, queue_position: int | None = None) -> dict[str, Any]:
    return {"status": status, "queue_position": queue_position}


def sse_frame(event: str, data: dict[str, Any]) -> str:
    """One Server-Sent Events frame (no `id`: the stream is live push, not a replayable log)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


SSE_KEEPALIVE = ": keepalive\n\n"


# --- a job's submission (POST /jobs) ----------------------------------------------------------------------------

RESERVED_JOB_FIELDS = ("webhook_url", "inputs")  # named by the contract, not accepted yet
EXTRA_DATA_KEYS = frozenset({"api_key_comfy_org"})  # extra_data is a closed object


class JobRequestError(ValueError):
    """What is wrong with a submission's body, with the contract's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class JobRequest:
    workflow: dict[str, Any]
    extra_data: dict[str, str] = field(default_factory=dict, repr=False)  # a secret: handed to the engine only


def job_request(data: Any, *, workflow_hint: str) -> JobRequest:
    """A submission's body (parsed JSON) as the contract reads it, or JobRequestError naming what is wrong, with the
    codes comfy-api-proxy answers too. `workflow_hint`: where this base URL's caller gets a workflow from."""
    if not isinstance(data, dict):
        raise JobRequestError("invalid_request", 'The body must be a JSON object: {"workflow": {...API-format '
                                                 'graph...}}.')
    reserved = [name for name in RESERVED_JOB_FIELDS if data.get(name) is not None]
    if reserved:
        raise JobRequestError("invalid_workflow", f"{' and '.join(repr(r) for r in reserved)} are reserved by the "
                                                  "Comfy API v2 and not accepted yet: put the values in the workflow "
                                                  "itself.")
    workflow = data.get("workflow")
    if not isinstance(workflow, dict):
        raise JobRequestError("invalid_workflow", f"Missing 'workflow': {workflow_hint}")
    if isinstance(workflow.get("nodes"), list) and "links" in workflow:
        raise JobRequestError("workflow_format_ui", "This is a UI-format workflow (the editor's save, with 'nodes' "
                                                    "and 'links'): export it in API format (File > Export (API)) "
                                                    "and send that.")
    extra = data.get("extra_data")
    if extra is not None and (not isinstance(extra, dict) or set(extra) - EXTRA_DATA_KEYS
                              or not all(isinstance(value, str) for value in extra.values())):
        raise JobRequestError("invalid_request", "'extra_data' accepts only 'api_key_comfy_org' (a string).")
    return JobRequest(workflow, dict(extra or {}))
