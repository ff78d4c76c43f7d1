"""GET /files/outputs/...: run outputs from the app's own storage (never the engine's /view)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from app.deps import ServicesDep
from app.errors import NotFound, error_responses
from app.runs.storage import resolve_inside
from runtimes.media_types import mime_of

router = APIRouter(tags=["files"], responses=error_responses(404, 422))

# Smaller files are read in one go (one thread hop); larger ones stream, with range requests (video).
_READ_WHOLE_BYTES = 1 << 20


def _read_small(path: Path) -> bytes | bool:
    """A small regular file's bytes; True for a larger one (to stream), False when there is none."""
    try:
        if not path.is_file():
            return False
        return True if path.stat().st_size > _READ_WHOLE_BYTES else path.read_bytes()
    except OSError:
        return False


@router.get("/files/outputs/{path:path}")
async def get_output(path: str, services: ServicesDep) -> Response:
    """Output URLs hold the run's random id: whoever has the run's record has the link."""
    target = resolve_inside(services.settings.outputs_dir, path)
    if target is None or target.name.endswith(".partial"):
        raise NotFound("No such output file.")
    found = await asyncio.to_thread(_read_small, target)
    if found is False:
        raise NotFound("No such output file.")
    media_type = mime_of(target.name)
    response = FileResponse(target, media_type=media_type) if found is True else Response(found, media_type=media_type)
    # Outputs are user-influenced files on the API's origin: never let a browser run them as a page.
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox"
    # A run's files never change once it ended (their path holds the run id).
    response.headers["Cache-Control"] = "private, max-age=31536000, immutable"
    if not media_type.startswith(("image/", "video/", "audio/")) or media_type == "image/svg+xml":
        response.headers["Content-Disposition"] = f'attachment; filename="{target.name}"'
    return response
