"""Model files: what the engines' models folder holds and what each app needs (GET /api/models), and background
fetches of an app's missing files from Hugging Face (POST /api/apps/{slug}/models/fetch, then
GET /api/models/fetches/{id}). Admin only: fetching writes gigabytes to the server's disk."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from app.deps import AdminDep, ServicesDep
from app.errors import NotFound, error_responses
from app.models.jobs import FetchJob
from app.models.needs import needs_of_all_apps, needs_of_app
from runtimes.models.needs import NeededModel
from runtimes.models.store import list_models

router = APIRouter(tags=["models"], responses=error_responses(400, 401, 403, 404, 409, 413, 422))


class StoredModelOut(BaseModel):
    folder: str = Field(description="the engine's models/ sub-folder, e.g. checkpoints")
    name: str
    size: int = Field(description="bytes")


class NeededModelOut(BaseModel):
    folder: str
    filename: str = Field(description="the name the workflow uses; a fetched file is stored under it")
    source: str | None = Field(description="hf://owner/repo/path[@revision], or null: put the file there by hand")
    present: bool = Field(description="the models folder has it (or a folder the engine reads as the same)")
    hint: str | None = Field(description="what to do when it is missing")

    @classmethod
    def of(cls, need: NeededModel) -> NeededModelOut:
        return cls(folder=need.folder, filename=need.filename, source=need.source, present=need.present,
                   hint=None if need.present else need.hint())


class AppModelsOut(BaseModel):
    slug: str
    models: list[NeededModelOut]
    missing: int


class ModelsOut(BaseModel):
    stored: list[StoredModelOut]
    apps: list[AppModelsOut]


class FileFetchOut(BaseModel):
    folder: str
    filename: str
    source: str | None
    state: Literal["queued", "fetching", "fetched", "present", "failed"]
    done: int = Field(description="bytes fetched so far")
    total: int | None = Field(description="the file's size, once the hub said it")
    error: str | None


class FetchJobOut(BaseModel):
    id: str
    label: str = Field(description="the app the job fetches for")
    finished: bool
    failed: bool = Field(description="some file could not be fetched (its error says why)")
    files: list[FileFetchOut]

    @classmethod
    def of(cls, job: FetchJob) -> FetchJobOut:
        return cls(id=job.id, label=job.label, finished=job.finished, failed=job.failed,
                   files=[FileFetchOut(folder=f.folder, filename=f.filename, source=f.source, state=f.state,
                                       done=f.done, total=f.total, error=f.error) for f in job.files])


def _app_models(slug: str, needs: list[NeededModel]) -> AppModelsOut:
    return AppModelsOut(slug=slug, models=[NeededModelOut.of(n) for n in needs],
                        missing=sum(not n.present for n in needs))


@router.get("/api/models")
async def list_model_files(services: ServicesDep, _: AdminDep) -> ModelsOut:
    models_dir = services.models.models_dir

    def listed(session: Session) -> ModelsOut:
        apps = needs_of_all_apps(session, models_dir)
        return ModelsOut(stored=[StoredModelOut(folder=m.folder, name=m.name, size=m.size)
                                 for m in list_models(models_dir)],
                         apps=[_app_models(slug, needs) for slug, needs in apps.items()])

    return await services.db(listed)


@router.get("/api/apps/{slug}/models")
async def app_models(slug: str, services: ServicesDep, _: AdminDep) -> AppModelsOut:
    needs = await services.db(needs_of_app, slug, services.models.models_dir)
    return _app_models(slug, needs)


@router.post("/api/apps/{slug}/models/fetch", status_code=status.HTTP_202_ACCEPTED)
async def fetch_app_models(slug: str, services: ServicesDep, _: AdminDep) -> FetchJobOut:
    """Starts fetching the app's missing model files in the background; follow it at /api/models/fetches/{id}."""
    needs = await services.db(needs_of_app, slug, services.models.models_dir)
    return FetchJobOut.of(services.models.start(slug, needs))


@router.get("/api/models/fetches/{job_id}")
async def get_fetch(job_id: str, services: ServicesDep, _: AdminDep) -> FetchJobOut:
    job = services.models.get(job_id)
    if job is None:
        raise NotFound(f"No model fetch {job_id[:40]!r} (jobs are kept while the server runs).")
    return FetchJobOut.of(job)
