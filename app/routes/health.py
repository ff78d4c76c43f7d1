"""Probes and the engine's state."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from app.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


class ReadyOut(BaseModel):
    ready: bool
    database: bool
    engine: str


@router.get("/readyz", responses={200: {"model": ReadyOut, "description": "ready"},
                                  503: {"model": ReadyOut, "description": "not ready: the database or no engine"}})
def readyz(services: ServicesDep) -> JSONResponse:
    """The database answers and at least one engine is ready; 503 otherwise."""
    try:
        with services.sessions() as session:
            session.execute(text("SELECT 1"))
        database = True
    except Exception:  # any DB failure means not ready; the reason is in the server log
        database = False
    engine = services.engines.is_ready()
    ready = database and engine
    return JSONResponse({"ready": ready, "database": database, "engine": services.engines.state},
                        status_code=200 if ready else 503)


@router.get("/api/engine", tags=["engine"])
def engine_info(services: ServicesDep) -> dict[str, Any]:
    """Which engine is in use, its devices, workers, queue and start-up progress."""
    return {**services.engines.describe(), "queued": services.runs.queued_count(),
            "running": services.runs.running_count()}
