"""Assets of the Comfy API v2: uploads (rows over content-addressed blobs) and run outputs (rows over artifacts).
Write functions commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, bindparam, delete, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import Artifact, Asset, utcnow


def _live(now: datetime | None = None) -> ColumnElement[bool]:
    return or_(Asset.expires_at.is_(None), Asset.expires_at > (now or utcnow()))


def add_asset(session: Session, asset: Asset) -> Asset:
    session.add(asset)
    session.commit()
    return asset


def get_asset(session: Session, *, asset_id: str) -> Asset | None:
    """A live asset (not expired) by id."""
    return session.scalars(select(Asset).where(Asset.id == asset_id, _live())).first()


def find_by_hash(session: Session, *, hash_: str) -> Asset | None:
    """Any live asset over this content (its blob exists while one does)."""
    return session.scalars(select(Asset).where(Asset.hash == hash_, _live()).limit(1)).first()


def find_by_file_path(session: Session, *, file_path: str, api_key_id: int | None) -> Asset | None:
    """The newest live upload of this caller under this file name (a workflow that names a file it uploaded)."""
    owner = Asset.api_key_id.is_(None) if api_key_id is None else Asset.api_key_id == api_key_id
    return session.scalars(select(Asset).where(Asset.file_path == file_path, owner, Asset.job_id.is_(None), _live())
                           .order_by(Asset.created_at.desc()).limit(1)).first()


def blob_users(session: Session, *, path: str) -> int:
    """How many asset rows share this stored file."""
    return session.scalar(select(func.count()).select_from(Asset).where(Asset.path == path)) or 0


def delete_asset(session: Session, *, asset_id: str) -> None:
    session.execute(delete(Asset).where(Asset.id == asset_id))
    session.commit()


def output_asset(session: Session, *, artifact: Artifact, new_id: str, expires_at: datetime | None) -> Asset:
    """The asset of a run's output, created on first use (its id is stable from then on)."""
    found = session.scalars(select(Asset).where(Asset.artifact_id == artifact.id)).first()
    if found is not None:
        return found
    asset = Asset(id=new_id, hash=None, size_bytes=artifact.size, content_type=artifact.mime,
                  file_path=artifact.filename, path=artifact.path, job_id=artifact.run_id, artifact_id=artifact.id,
                  created_at=utcnow(), expires_at=expires_at)
    try:
        return add_asset(session, asset)
    except IntegrityError:  # made by a concurrent request: theirs stands
        session.rollback()
        return session.scalars(select(Asset).where(Asset.artifact_id == artifact.id)).one()


_ARTIFACTS, _ASSETS = Artifact.__table__, Asset.__table__
_INSERT_ASSETS = insert(_ASSETS)
# A job's outputs with their assets, in one query (a status poll of a finished job reads this).
_OUTPUTS_OF = (select(_ARTIFACTS, _ASSETS.c.id.label("asset_id"), _ASSETS.c.hash.label("asset_hash"))
               .join_from(_ARTIFACTS, _ASSETS, _ASSETS.c.artifact_id == _ARTIFACTS.c.id, isouter=True)
               .where(_ARTIFACTS.c.run_id == bindparam("run_id")).order_by(_ARTIFACTS.c.id))


def add_output_assets(session: Session, *, run_id: str, artifacts: Sequence[tuple[int, Any]], created_at: datetime,
                      expires_at: datetime | None) -> None:
    """An asset for each output just recorded ((artifact id, its NewArtifact)), WITHOUT committing: the run's end
    writes them in its own transaction, so reading a finished job writes nothing. The asset takes the NewArtifact's
    `asset_id` when it has one (the recorder chose it, to answer from memory with the same id)."""
    if artifacts:
        session.execute(_INSERT_ASSETS, [
            {"id": getattr(a, "asset_id", None) or str(uuid.uuid4()), "hash": None, "size_bytes": a.size,
             "content_type": a.mime, "file_path": a.filename, "path": a.path, "api_key_id": None, "job_id": run_id,
             "artifact_id": artifact_id, "created_at": created_at, "expires_at": expires_at}
            for artifact_id, a in artifacts])


def outputs_with_assets(session: Session, *, run_id: str) -> Sequence[Row[Any]]:
    """The run's artifacts in the order they were added, each with `asset_id` and `asset_hash` (None where no asset
    was made: a run that ended before outputs got theirs at the end)."""
    return session.execute(_OUTPUTS_OF, {"run_id": run_id}).all()


def expired_assets(session: Session, *, now: datetime, limit: int = 500) -> list[Asset]:
    return list(session.scalars(select(Asset).where(Asset.expires_at.is_not(None), Asset.expires_at <= now)
                                .limit(limit)))
