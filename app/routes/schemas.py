"""Request and response bodies of the REST API (typed, so /docs shows them). A run's are app.runs.views', a
publish request app.publish.service's."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from db.models import App, AppVersion
from publisher import AppSpec


class AnalyzeRequest(BaseModel):
    workflow: dict[str, Any] = Field(description="the workflow: API format (node id -> node) or the UI format "
                                                 "ComfyUI saves (nodes, links)")


class VersionOut(BaseModel):
    number: int
    created_at: datetime
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    timeout_s: float
    models: list[dict[str, Any]]
    custom_nodes: list[dict[str, str]] = Field(default_factory=list, description="the node packs it needs, pinned: "
                                               "{repo, commit} or {registry, version}")

    @classmethod
    def of(cls, version: AppVersion) -> VersionOut:
        spec = AppSpec.from_dict(version.spec)
        data = spec.to_dict()
        return cls(number=version.number, created_at=version.created_at, inputs=[i.schema() for i in spec.inputs],
                   outputs=data["outputs"], timeout_s=spec.timeout_s, models=data["models"],
                   custom_nodes=data["custom_nodes"])


class AppOut(BaseModel):
    slug: str
    name: str
    description: str
    public: bool
    version: int
    endpoints: dict[str, str]
    latest: VersionOut | None = None
    warnings: list[str] = Field(default_factory=list, description="on publishing: what the engine here lacks to run "
                                                                  "it (a model file), with the command that fetches it")

    @classmethod
    def of(cls, app: App, version: AppVersion, *, detail: bool = True, warnings: list[str] | None = None) -> AppOut:
        base = f"/api/apps/{app.slug}"
        return cls(
            slug=app.slug, name=app.name, description=app.description, public=app.public, version=version.number,
            endpoints={"run": f"{base}/run", "runs": f"{base}/runs",
                       "pinned_run": f"{base}/versions/{version.number}/run",
                       "pinned_runs": f"{base}/versions/{version.number}/runs",
                       "history": f"/api/runs?app={app.slug}"},
            latest=VersionOut.of(version) if detail else None,
            warnings=warnings or [],
        )


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    admin: bool = False
    workflows: bool = Field(False, description="may run any API-format workflow (POST /api/v2/jobs)")


class KeyOut(BaseModel):
    id: int
    name: str
    prefix: str
    admin: bool
    workflows: bool = False
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class KeyCreated(KeyOut):
    key: str = Field(description="the key itself: shown once, store it now")
