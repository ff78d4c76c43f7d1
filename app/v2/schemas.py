"""The Comfy API v2's bodies as this server documents them in /openapi.json (the contract's own schemas, spec
VERSION 2.0.0, are the truth: the tests check every answer against comfy-sdk's models generated from it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

JobStatus = Literal["queued", "running", "succeeded", "canceling", "canceled", "failed", "expired"]


class Progress(BaseModel):
    value: float = Field(ge=0, le=1)
    nodes_done: int
    nodes_total: int
    current_node: str | None = None
    current_node_class: str | None = None
    step: int | None = None
    steps: int | None = None
    message: str | None = None


class Output(BaseModel):
    node_id: str
    name: str
    type: Literal["image", "video", "audio", "text", "file", "latent"]
    content_type: str
    size_bytes: int
    id: str = Field(description="the asset's id (GET /api/v2/assets/{id})")
    hash: str | None
    url: str
    url_expires_at: datetime
    job_id: str | None = None


class JobError(BaseModel):
    code: str
    message: str
    node_id: str | None = None
    class_type: str | None = None
    traceback: str | None = None


class JobUrls(BaseModel):
    self: str
    events: str
    cancel: str
    workflow: str | None = None


class Job(BaseModel):
    id: str
    status: JobStatus
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    expires_at: datetime = Field(description="created + --keep-outputs days; 9999-12-31 when outputs are kept forever")
    queue_position: int | None
    progress: Progress | None
    outputs: list[Output]
    error: JobError | None
    metrics: dict[str, int | None] | None = None
    urls: JobUrls


class JobWorkflow(BaseModel):
    workflow: dict[str, Any]
    format: Literal["save", "api"]


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | None = None


class ErrorEnvelope(BaseModel):
    """Every v2 error: `invalid_workflow`, `workflow_format_ui`, `missing_asset`, `idempotency_key_reuse`,
    `queue_full` (429 + Retry-After), `not_found`, `unauthorized`, `forbidden`, `invalid_request`, ..."""

    error: ErrorBody


class Health(BaseModel):
    status: Literal["healthy", "starting", "unavailable"]
    engine: str


_MEANING = {
    400: "invalid_request: the body is not what the contract takes",
    401: "unauthorized: no API key, or an unknown one",
    403: "forbidden: this key may not do this",
    404: "not_found: no such job or app (or not yours)",
    413: "payload_too_large: the body is over this server's cap",
    422: "invalid_workflow (with node_errors), workflow_format_ui, missing_asset, idempotency_key_reuse",
    429: "queue_full: retry after Retry-After seconds",
    503: "upstream_error: no engine can run it now",
}


def error_answers(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorEnvelope, "description": _MEANING[code]} for code in codes}
