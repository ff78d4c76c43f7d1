"""Where asset bytes live: uploads in content-addressed blobs under `DATA_DIR/assets/<2 hex>/<hex>` (the same bytes
uploaded twice are stored once, whoever sent them), outputs where the run recorder wrote them. The rows
(db.crud_assets) say who owns what; a blob is removed with the last row over it.

Call the methods taking a Session from a worker thread (Services.db)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import blake3
from sqlalchemy.orm import Session

from app.runs.storage import remove_file, resolve_inside
from db import crud_assets, crud_retention
from db.models import Artifact, Asset, utcnow

HASH_PREFIX = "blake3:"
BLOBS = "assets"  # the blobs' folder, under the data dir


def blake3_of(data: bytes) -> str:
    """The content hash as the v2 contract writes it: `blake3:<64 hex>`."""
    return HASH_PREFIX + blake3.blake3(data).hexdigest()


def is_hash(value: str) -> bool:
    hexpart = value.removeprefix(HASH_PREFIX)
    return value.startswith(HASH_PREFIX) and len(hexpart) == 64 and all(c in "0123456789abcdef" for c in hexpart)


def blob_path(hash_: str) -> str:
    """A blob's path relative to the data dir."""
    hexpart = hash_.removeprefix(HASH_PREFIX)
    return f"{BLOBS}/{hexpart[:2]}/{hexpart}"


def keep_blob(data_dir: Path, data: bytes) -> tuple[str, str, bool]:
    """Store these bytes once by their content: (hash, path relative to the data dir, whether they were new).

    Safe when the same bytes come twice at the same moment: each writer has a temporary file of its own, and the
    rename that publishes the blob is atomic (same bytes, same name: the last rename wins, nothing is torn)."""
    hash_ = blake3_of(data)
    relative = blob_path(hash_)
    target = resolve_inside(data_dir, relative)
    if target is None:
        raise ValueError(f"refusing to write outside {data_dir}: {relative!r}")
    if target.is_file():
        with contextlib.suppress(OSError):  # stored again now: retention leaves a blob just re-used alone
            os.utime(target)
        return hash_, relative, False
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(OSError):  # the write's own error is the one to report
            os.unlink(partial)
        raise
    return hash_, relative, True


def blob_in_use(session: Session, hash_: str, path: str, *, not_runs: tuple[str, ...] = ()) -> bool:
    """Whether an asset row or a run's kept inputs (other than `not_runs`) still need this blob."""
    return (crud_assets.blob_users(session, path=path) > 0
            or crud_retention.runs_holding(session, needle=hash_.removeprefix(HASH_PREFIX), not_ids=not_runs))


@dataclass(frozen=True)
class Stored:
    asset: Asset
    created_new: bool  # the bytes were not stored before (no blob of this hash)


class AssetStore:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def file(self, asset: Asset) -> Path | None:
        """The asset's bytes on disk; None when the path would leave the data dir."""
        return resolve_inside(self.data_dir, asset.path)

    def has_blob(self, hash_: str) -> bool:
        found = resolve_inside(self.data_dir, blob_path(hash_)) if is_hash(hash_) else None
        return found is not None and found.is_file()

    def put(self, session: Session, data: bytes, *, content_type: str, file_path: str | None,
            api_key_id: int | None, expires_at: datetime | None) -> Stored:
        """A new asset row over these bytes; the blob is written only when no asset holds them yet."""
        hash_, relative, created_new = keep_blob(self.data_dir, data)
        asset = crud_assets.add_asset(session, Asset(
            id=str(uuid.uuid4()), hash=hash_, size_bytes=len(data), content_type=content_type, file_path=file_path,
            path=relative, api_key_id=api_key_id, created_at=utcnow(), expires_at=expires_at))
        return Stored(asset, created_new)

    def from_hash(self, session: Session, hash_: str, *, file_path: str | None, content_type: str | None,
                  api_key_id: int | None, expires_at: datetime | None) -> Asset | None:
        """A new asset row over bytes already stored (no upload); None when no blob has this hash."""
        source = crud_assets.find_by_hash(session, hash_=hash_)
        if source is None or not self.has_blob(hash_):
            return None
        return crud_assets.add_asset(session, Asset(
            id=str(uuid.uuid4()), hash=hash_, size_bytes=source.size_bytes,
            content_type=content_type or source.content_type, file_path=file_path, path=source.path,
            api_key_id=api_key_id, created_at=utcnow(), expires_at=expires_at))

    def of_output(self, session: Session, artifact: Artifact, *, expires_at: datetime | None) -> Asset:
        """The asset of a run's output (made on first use; the same id ever after)."""
        return crud_assets.output_asset(session, artifact=artifact, new_id=str(uuid.uuid4()), expires_at=expires_at)

    def delete(self, session: Session, asset: Asset) -> None:
        """The row; the blob too when no other row, and no run's kept inputs, hold it. An output's file stays with
        its run."""
        crud_assets.delete_asset(session, asset_id=asset.id)
        if asset.artifact_id is None and asset.hash and not blob_in_use(session, asset.hash, asset.path):
            remove_file(self.data_dir, asset.path)
