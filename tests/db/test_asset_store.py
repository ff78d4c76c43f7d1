"""The asset store: content-addressed blobs under the data dir, rows per upload, outputs made assets on first use."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import blake3
from sqlalchemy.orm import Session

from app.assets.store import AssetStore, blob_path, is_hash
from db import crud_asset_owners, crud_assets, crud_keys, crud_runs
from db.models import Artifact, utcnow
from tests.db.factories import publish


def test_the_same_bytes_are_stored_once_and_removed_with_their_last_asset(session: Session, tmp_path: Path) -> None:
    store = AssetStore(tmp_path)
    first = store.put(session, b"pixels", content_type="image/png", file_path="a.png", api_key_id=None,
                      expires_at=None)
    second = store.put(session, b"pixels", content_type="image/png", file_path="b.png", api_key_id=None,
                       expires_at=None)
    assert first.created_new and not second.created_new
    assert first.asset.hash == second.asset.hash == "blake3:" + blake3.blake3(b"pixels").hexdigest()
    assert is_hash(first.asset.hash) and first.asset.id != second.asset.id
    blob = tmp_path / blob_path(first.asset.hash)
    assert blob.read_bytes() == b"pixels" and len(list((tmp_path / "assets").rglob("*"))) == 2  # one folder, one file
    store.delete(session, first.asset)
    assert blob.is_file() and crud_assets.get_asset(session, asset_id=first.asset.id) is None
    store.delete(session, second.asset)
    assert not blob.exists()


def test_from_hash_needs_the_bytes_and_expired_assets_are_gone(session: Session, tmp_path: Path) -> None:
    store = AssetStore(tmp_path)
    assert store.from_hash(session, "blake3:" + "0" * 64, file_path=None, content_type=None, api_key_id=None,
                           expires_at=None) is None
    past = utcnow() - timedelta(seconds=1)
    stored = store.put(session, b"x", content_type="text/plain", file_path="x.txt", api_key_id=None, expires_at=past)
    assert crud_assets.get_asset(session, asset_id=stored.asset.id) is None
    assert [a.id for a in crud_assets.expired_assets(session, now=utcnow())] == [stored.asset.id]
    # The only row over it has expired: its bytes are not offered again.
    assert store.from_hash(session, stored.asset.hash, file_path="y.txt", content_type=None, api_key_id=None,
                           expires_at=None) is None


def test_an_output_becomes_one_asset(session: Session, tmp_path: Path) -> None:
    version = publish(session)
    run = crud_runs.create_run(session, run_id="r" * 32, status="queued", app_id=version.app_id,
                               version_id=version.id, inputs={})
    artifact = Artifact(run_id=run.id, node_id="9", kind="image", filename="00-out.png",
                        path="outputs/" + run.id + "/00-out.png", mime="image/png", size=3)
    session.add(artifact)
    session.commit()
    store = AssetStore(tmp_path)
    first = store.of_output(session, artifact, expires_at=None)
    assert store.of_output(session, artifact, expires_at=None).id == first.id
    assert (first.job_id, first.content_type, first.size_bytes, first.hash) == (run.id, "image/png", 3, None)


def test_a_runs_end_makes_its_outputs_assets_and_an_asset_reads_with_its_owner(session: Session,
                                                                                tmp_path: Path) -> None:
    version = publish(session)
    key, _ = crud_keys.create_api_key(session, name="runner", admin=False)
    run = crud_runs.create_run(session, run_id="e" * 32, status="running", app_id=version.app_id,
                               version_id=version.id, inputs={}, api_key_id=key.id)
    out = crud_runs.NewArtifact(node_id="9", kind="image", filename="00-out.png",
                                path="outputs/" + run.id + "/00-out.png", mime="image/png", size=3)
    crud_runs.end_run(session, run_id=run.id, status="succeeded", finished_at=utcnow(), artifacts=[out],
                      output_assets=True, assets_kept_for=timedelta(days=2))
    (row,) = crud_assets.outputs_with_assets(session, run_id=run.id)  # the output and its asset, one query
    owned = crud_asset_owners.live_with_owner(session, asset_id=row.asset_id)
    assert owned is not None and owned.owner == key.id and owned.run_files_removed is None
    assert (owned.asset.job_id, owned.asset.artifact_id, owned.asset.path) == (run.id, row.id, out.path)
    assert owned.asset.expires_at is not None and owned.asset.expires_at > utcnow() + timedelta(days=1)
    artifact = session.get(Artifact, row.id)
    assert artifact is not None
    assert AssetStore(tmp_path).of_output(session, artifact, expires_at=None).id == row.asset_id  # the same one
    upload = AssetStore(tmp_path).put(session, b"x", content_type="text/plain", file_path="x.txt", api_key_id=None,
                                      expires_at=None)
    owned = crud_asset_owners.live_with_owner(session, asset_id=upload.asset.id)
    assert owned is not None and owned.owner is None  # an upload's owner is its uploader (none here)
    assert crud_asset_owners.live_with_owner(session, asset_id="nope") is None
