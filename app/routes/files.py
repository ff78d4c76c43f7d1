"""GET /files/outputs/...: run outputs from the app's own storage (never the engine's /view)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse

from app.deps import ServicesDep
from app.storage import resolve_inside

router = APIRouter(tags=["files"])


@router.get("/files/outputs/{path:path}")
def get_output(path: str, services: ServicesDep) -> FileResponse:
    """Output URLs hold the run's random id: whoever has the run's record has the link."""
    target = resolve_inside(services.settings.outputs_dir, path)
    if target is None or not target.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="No such output file.")
    return FileResponse(target)
