"""An asset as the Comfy API v2 shows it (the contract's `Asset`), with its content URL under the base URL it was
asked at: the server's (`/api/v2/...`) or an app's (`/apps/{slug}/api/v2/...`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from starlette.requests import Request

from app.v2.errors import V2_PATH
from db.models import Asset, utcnow

# The content URL is this server's own endpoint (normal auth applies): it does not expire, but the contract wants a
# time; clients re-fetch the asset for a fresh one.
URL_VALID = timedelta(hours=24)


class AssetOut(BaseModel):
    id: str
    hash: str | None = Field(description="`blake3:<hex>`; null for a run's output")
    size_bytes: int
    content_type: str
    file_path: str | None = None
    created_new: bool | None = Field(None, description="on create: a new blob (true) or a dedup hit (false)")
    created_at: datetime
    url: str = Field(description="the content, at this base URL")
    url_expires_at: datetime
    expires_at: datetime | None = Field(None, description="when the asset itself is removed; null: never")
    job_id: str | None = Field(None, description="the job (run) that produced it; absent for uploads")


def base_url(request: Request) -> str:
    """The base URL this request came under: everything before `/api/v2/`."""
    url = str(request.url.replace(query=None, fragment=None))
    return url[:url.index(V2_PATH)] if V2_PATH in url else url.rstrip("/")


def asset_out(asset: Asset, request: Request, *, created_new: bool | None = None) -> AssetOut:
    return AssetOut(id=asset.id, hash=asset.hash, size_bytes=asset.size_bytes, content_type=asset.content_type,
                    file_path=asset.file_path, created_new=created_new, created_at=asset.created_at,
                    url=f"{base_url(request)}/api/v2/assets/{asset.id}/content", url_expires_at=utcnow() + URL_VALID,
                    expires_at=asset.expires_at, job_id=asset.job_id)


def answer_json(out: AssetOut) -> str:
    # Absent rather than null where the contract marks a field optional and the value is unknown.
    exclude = {name for name in ("created_new", "job_id") if getattr(out, name) is None}
    return out.model_dump_json(exclude=exclude)
