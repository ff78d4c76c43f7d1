"""Whose an asset is: an upload belongs to the key that sent it, a run's output to the key that ran it. The Comfy
API v2 answers "not found" for an asset of someone else (app.routes.v2_assets)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from db.models import Asset, Run, utcnow


def owner_of(session: Session, asset: Asset) -> int | None:
    """The API key the asset belongs to (None: sent or run without a key, on a public app)."""
    if asset.job_id is None:
        return asset.api_key_id
    return session.scalar(select(Run.api_key_id).where(Run.id == asset.job_id))


@dataclass(frozen=True)
class Owned:
    asset: Asset
    owner: int | None  # as owner_of says
    run_files_removed: dict[str, Any] | None  # an output's run: what retention removed of its files


def live_with_owner(session: Session, *, asset_id: str) -> Owned | None:
    """A live asset, its owner and its run's removed files, in one query (serving an asset's bytes reads this)."""
    row = session.execute(select(Asset, Run.api_key_id, Run.files_removed)
                          .join_from(Asset, Run, Run.id == Asset.job_id, isouter=True)
                          .where(Asset.id == asset_id, or_(Asset.expires_at.is_(None), Asset.expires_at > utcnow()))
                          ).first()
    if row is None:
        return None
    asset, run_key, removed = row
    return Owned(asset, asset.api_key_id if asset.job_id is None else run_key, removed)


def upload_by_hash(session: Session, *, hash_: str, api_key_id: int | None, any_owner: bool) -> Asset | None:
    """A live upload over this content that the caller may mint from: theirs, or anyone's for an admin."""
    query = select(Asset).where(Asset.hash == hash_, Asset.job_id.is_(None),
                                or_(Asset.expires_at.is_(None), Asset.expires_at > utcnow()))
    if not any_owner:
        query = query.where(Asset.api_key_id.is_(None) if api_key_id is None else Asset.api_key_id == api_key_id)
    return session.scalars(query.order_by(Asset.created_at.desc()).limit(1)).first()


def same_reference(session: Session, *, hash_: str, api_key_id: int | None, file_path: str | None) -> Asset | None:
    """The caller's own live upload of this content under this name, if there is one."""
    owner = Asset.api_key_id.is_(None) if api_key_id is None else Asset.api_key_id == api_key_id
    name = Asset.file_path.is_(None) if file_path is None else Asset.file_path == file_path
    query = select(Asset).where(Asset.hash == hash_, Asset.job_id.is_(None), owner, name,
                                or_(Asset.expires_at.is_(None), Asset.expires_at > utcnow()))
    return session.scalars(query.order_by(Asset.created_at.desc()).limit(1)).first()
