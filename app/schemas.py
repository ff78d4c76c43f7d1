"""Request and response bodies of the REST API (typed, so /docs shows them)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Row

from db.crud_runs import NewArtifact
from db.models import App, AppVersion, Artifact, Run
from publisher import AppSpec


class PublishInput(BaseModel):
    node: str = Field(description="node id in the API-format workflow")
    input: str = Field(description="the node input to make dynamic")
    name: str | None = Field(None, description="API name of the input (default: from the label)")
    label: str | None = None
    default: Any = None
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: list[Any] | None = None
    required: bool | None = None
    randomize: bool | None = Field(None, description="seeds: draw a new seed when none is given")
    help: str | None = None


class PublishRequest(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    slug: str | None = Field(None, description="URL name; default: from the name. Publishing again to the same "
                                               "slug makes a new version")
    description: str = ""
    workflow: dict[str, Any] = Field(description="API-format workflow (ComfyUI: Export (API)), or the UI-format "
                                                 "workflow.json ComfyUI saves (converted with the engine's schemas)")
    inputs: list[PublishInput] = Field(default_factory=list)
    outputs: list[str] | None = Field(None, description="output node ids to publish (default: the save nodes)")
    public: bool | None = Field(None, description="anyone may run it without an API key (default: private for a "
                                                  "new app, unchanged for a new version)")
    timeout_s: float | None = Field(None, description="per-run limit in seconds (default 600)")
    model_sources: dict[str, str] = Field(
        default_factory=dict, description="where a serverless deployment downloads each model file: its file name "
                                          "(or folder/file name, as analyze lists them) -> "
                                          "hf://owner/repo/path/in/repo.safetensors[@revision]")


class AnalyzeRequest(BaseModel):
    workflow: dict[str, Any] | list[Any]


class VersionOut(BaseModel):
    number: int
    created_at: datetime
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    timeout_s: float
    models: list[dict[str, Any]]

    @classmethod
    def of(cls, version: AppVersion) -> VersionOut:
        spec = AppSpec.from_dict(version.spec)
        data = spec.to_dict()
        return cls(number=version.number, created_at=version.created_at, inputs=[i.schema() for i in spec.inputs],
                   outputs=data["outputs"], timeout_s=spec.timeout_s, models=data["models"])


class AppOut(BaseModel):
    slug: str
    name: str
    description: str
    public: bool
    version: int
    endpoints: dict[str, str]
    latest: VersionOut | None = None

    @classmethod
    def of(cls, app: App, version: AppVersion, *, detail: bool = True) -> AppOut:
        base = f"/api/apps/{app.slug}"
        return cls(
            slug=app.slug, name=app.name, description=app.description, public=app.public, version=version.number,
            endpoints={"run": f"{base}/run", "runs": f"{base}/runs",
                       "pinned_run": f"{base}/versions/{version.number}/run",
                       "pinned_runs": f"{base}/versions/{version.number}/runs",
                       "history": f"/api/runs?app={app.slug}"},
            latest=VersionOut.of(version) if detail else None,
        )


class OutputOut(BaseModel):
    url: str
    filename: str
    node: str
    kind: str
    mime: str
    size: int

    @classmethod
    def of(cls, artifact: Artifact | NewArtifact | Row[Any]) -> OutputOut:
        return cls(url=f"/files/{artifact.path}", filename=artifact.filename, node=artifact.node_id,
                   kind=artifact.kind, mime=artifact.mime, size=artifact.size)


class Timings(BaseModel):
    queue_ms: float | None
    exec_ms: float | None
    total_ms: float | None


class WebhookOut(BaseModel):
    status: str = Field(description="pending (due, retried with backoff), delivered, or failed (after its retries)")
    error: str | None = Field(None, description="why the last attempt failed")


class RunOut(BaseModel):
    id: str
    app: str
    version: int
    status: str
    queue_position: int | None = None
    progress: dict[str, Any] | None = None
    timings: Timings
    inputs: dict[str, Any] = Field(description="the values as applied (seed included) once the run started; "
                                               "as submitted before")
    outputs: list[OutputOut] = Field(default_factory=list)
    error: dict[str, Any] | None = None
    worker: str | None = None
    attempts: int = 0
    webhook: WebhookOut | None = Field(None, description="the delivery of the run's webhook, once it ended")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    urls: dict[str, str]

    @classmethod
    def of(cls, run: Run | Row[Any], *, slug: str, version: int, artifacts: Sequence[Artifact | NewArtifact | Row[Any]],
           queue_position: int | None = None) -> RunOut:
        return cls(
            id=run.id, app=slug, version=version, status=run.status, queue_position=queue_position,
            progress=run.progress, timings=Timings(queue_ms=run.queue_ms, exec_ms=run.exec_ms, total_ms=run.total_ms),
            inputs=run.applied or run.inputs or {}, outputs=[OutputOut.of(a) for a in artifacts], error=run.error,
            worker=run.worker, attempts=run.attempts, created_at=run.created_at, started_at=run.started_at,
            webhook=WebhookOut(status=run.webhook_status, error=run.webhook_error) if run.webhook_status else None,
            finished_at=run.finished_at,
            urls={"self": f"/api/runs/{run.id}", "events": f"/api/runs/{run.id}/events",
                  "cancel": f"/api/runs/{run.id}/cancel"},
        )


class RunPage(BaseModel):
    runs: list[RunOut]
    next_before: str | None = Field(None, description="pass as ?before= for the next (older) page")


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    admin: bool = False


class KeyOut(BaseModel):
    id: int
    name: str
    prefix: str
    admin: bool
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class KeyCreated(KeyOut):
    key: str = Field(description="the key itself: shown once, store it now")
