"""Files a v2 job's workflow names: `core/ASSET` references (`{"__type": "core/ASSET", "info": {"id": ...}}`) in any
node input, and plain file names of the caller's uploads in an upload input (LoadImage's `image`). Each becomes a
file of the run (its bytes read from the asset store); an unknown id, someone else's asset or a malformed reference
is refused with `missing_asset`, naming the node and the input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.assets.store import AssetStore
from app.auth.keys import Caller
from app.v2.errors import V2Error
from db import crud_assets, crud_runs
from db.models import Asset
from publisher.app_workflow_guard import asset_reference_problem, is_asset_reference
from publisher.quoting import cut


@dataclass(frozen=True)
class AssetFile:
    """A file input of a run, from an asset."""

    node: str
    input: str
    filename: str
    data: bytes


def owns(session: Session, caller: Caller, asset: Asset) -> bool:
    """An upload is its uploader's; an output is the job's submitter's. Admin keys may use any."""
    if caller.admin:
        return True
    owner = asset.api_key_id
    if asset.job_id is not None:
        run = crud_runs.get_run(session, run_id=asset.job_id)
        owner = run.api_key_id if run is not None else -1
    return owner == caller.key_id


def resolve_reference(session: Session, store: AssetStore, caller: Caller, node: str, name: str,
                      value: Any) -> Asset:
    """The asset a `core/ASSET` reference names, or `missing_asset`."""
    where = f"node {node} input '{name}'"
    if (why := asset_reference_problem(value)) is not None:
        raise missing(node, name, f"The asset reference in {where} is malformed: {why}.")
    asset_id = str(value["info"]["id"])
    asset = crud_assets.get_asset(session, asset_id=asset_id)
    if asset is None or not owns(session, caller, asset):  # "not yours" reads as "unknown", as the contract says
        raise missing(node, name, f"{where} names asset {cut(asset_id)!r}, which does not exist or is not yours: "
                                  "upload the file (POST /api/v2/assets) and use the id it returns.", asset_id)
    return asset


def uploaded_by_name(session: Session, caller: Caller, file_name: str) -> Asset | None:
    """The caller's newest upload with this file name, if any."""
    return crud_assets.find_by_file_path(session, file_path=file_name, api_key_id=caller.key_id)


def read(store: AssetStore, node: str, name: str, asset: Asset) -> AssetFile:
    path = store.file(asset)
    if path is None or not path.is_file():
        raise missing(node, name, f"The bytes of asset {asset.id} are gone (its retention ended): upload the "
                                  "file again.", asset.id)
    return AssetFile(node, name, asset.file_path or "upload", path.read_bytes())


def missing(node: str, name: str, message: str, asset_id: str | None = None) -> V2Error:
    detail: dict[str, Any] = {"node_id": node, "input": name}
    if asset_id is not None:
        detail["asset_id"] = cut(asset_id)
    return V2Error("missing_asset", message, details={"node_errors": {node: [{"field": name,
                                                                               "reason": "missing_asset",
                                                                               "message": message}]},
                                                      "missing": [detail]})


__all__ = ["AssetFile", "is_asset_reference", "missing", "owns", "read", "resolve_reference", "uploaded_by_name"]
