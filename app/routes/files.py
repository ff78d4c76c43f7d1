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
    if target is None or not target.is_file() or target.name.endswith(".partial"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="No such output file.")
    response = FileResponse(target)
    # Outputs are user-influenced files on the API's origin: never let a browser run them as a page.
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox"
    if not response.media_type or not response.media_type.startswith(("image/", "video/", "audio/")) \
            or response.media_type == "image/svg+xml":
        response.headers["Content-Disposition"] = f'attachment; filename="{target.name}"'
    return response
