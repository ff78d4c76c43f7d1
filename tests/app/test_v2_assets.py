"""The Comfy API v2's assets against the real app, driven by Comfy-Org's own client (comfy-sdk): uploads stored once
per content, from-hash, by-hash, get, content with Range, delete, each error code; every answer checked against the
SDK's generated models. And a run's uploaded inputs through the typed API: the same file twice is one blob."""

from __future__ import annotations

import io
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from comfy_low.errors import BlobNotFound, HashMismatch, IdempotencyKeyReuse, NotFound, Unauthorized
from comfy_low.models import Asset, ErrorEnvelope
from comfy_sdk import Comfy
from PIL import Image

from app.assets.store import AssetStore, blake3_of
from db.models import Artifact
from db.models import Asset as AssetRow
from db.session import create_db_engine, make_session_factory
from tests.support.photo_app import publish_photo_app, run_photo
from tests.support.server import AppServer

MAX_UPLOAD_MB = 1


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine_url: str) -> Iterator[AppServer]:
    app = AppServer(tmp_path_factory.mktemp("v2assets"), comfyui_url=engine_url,
                    extra=("--max-upload-mb", str(MAX_UPLOAD_MB))).start()
    yield app
    app.stop()


def sdk(server: AppServer, headers: dict[str, str] | None) -> Comfy:
    """The official client with this server as its base URL (read from COMFY_BASE_URL when it is built)."""
    key = headers["Authorization"].removeprefix("Bearer ") if headers else None
    before = {name: os.environ.get(name) for name in ("COMFY_BASE_URL", "COMFY_API_KEY")}
    os.environ["COMFY_BASE_URL"] = server.url
    os.environ.pop("COMFY_API_KEY", None)
    try:
        return Comfy(api_key=key)
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def other(server: AppServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.create_key('other runner')}"}


def png(color: tuple[int, int, int], size: int = 16) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), color).save(out, format="PNG")
    return out.getvalue()


def blobs(server: AppServer) -> list[Path]:
    return sorted(p for p in (server.data_dir / "assets").rglob("*") if p.is_file())


def envelope(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = ErrorEnvelope.model_validate(response.json()).error
    assert error.code == code, response.text
    return error.message


def test_an_upload_is_stored_once_and_read_back_whole_or_in_part(server: AppServer, runner: dict[str, str],
                                                                 other: dict[str, str]) -> None:
    data = png((200, 40, 10))
    client = sdk(server, runner)
    first = client.assets.from_bytes(data, filename="photo.png", content_type="image/png")
    first.commit()
    assert first.created_new is True and first.hash == blake3_of(data)
    on_disk = blobs(server)
    assert [p.read_bytes() for p in on_disk] == [data]

    # The same bytes again: the SDK probes by hash, then mints from it; no second file. Under the same name it is
    # the same asset (as Comfy's own e2e test expects), under another a new record over the same bytes.
    again = client.assets.from_bytes(data, filename="photo.png", content_type="image/png")
    assert again.commit() == first.id and again.created_new is False
    second = client.assets.from_bytes(data, filename="again.png", content_type="image/png")
    second.commit()
    assert second.created_new is False and second.id != first.id and blobs(server) == on_disk
    # Another key does not see the first key's content by hash, uploads it, and it is deduplicated all the same
    third = sdk(server, other).assets.from_bytes(data, filename="mine.png", content_type="image/png")
    third.commit()
    assert third.created_new is False and blobs(server) == on_disk

    asset = client._low.get_asset(first.id)  # validated against the SDK's Asset model
    assert (asset.hash, asset.size_bytes, asset.content_type, asset.file_path) == (first.hash, len(data), "image/png",
                                                                                   "photo.png")
    assert asset.job_id is None and str(asset.url) == f"{server.url}/api/v2/assets/{first.id}/content"
    assert first.get_download_url().url == str(asset.url)  # served inline here: the URL is the content endpoint
    with client._low.get_asset_content(first.id) as whole:
        assert whole.status_code == 200 and whole.headers["content-type"] == "image/png"
        assert whole.read() == data
    with client._low.get_asset_content(first.id, range=(8, 23)) as part:
        assert part.status_code == 206 and part.read() == data[8:24]
        assert part.headers["content-range"] == f"bytes 8-23/{len(data)}"


def test_from_hash_and_by_hash_are_scoped_to_the_callers_own_content(server: AppServer, http: httpx.Client,
                                                                       runner: dict[str, str], other: dict[str, str],
                                                                       admin: dict[str, str]) -> None:
    data = png((1, 2, 3))
    hash_ = blake3_of(data)
    assert http.head(f"/api/v2/assets/by-hash/{hash_}", headers=runner).status_code == 404
    client = sdk(server, runner)
    with pytest.raises(BlobNotFound):
        client._low.asset_from_hash(hash_)
    client.assets.from_bytes(data, filename="c.png", content_type="image/png").commit()

    assert http.head(f"/api/v2/assets/by-hash/{hash_}", headers=runner).status_code == 200
    assert http.head(f"/api/v2/assets/by-hash/{hash_}", headers=other).status_code == 404  # not theirs
    assert http.head(f"/api/v2/assets/by-hash/{hash_}", headers=admin).status_code == 200  # admin sees all
    minted = client._low.asset_from_hash(hash_, file_path="renamed.png")
    assert (minted.hash, minted.file_path, minted.created_new) == (hash_, "renamed.png", False)
    with pytest.raises(BlobNotFound):
        sdk(server, other)._low.asset_from_hash(hash_)
    response = http.post("/api/v2/assets/from-hash", json={"hash": "blake3:" + "0" * 64}, headers=runner)
    assert "upload the file" in envelope(response, 404, "blob_not_found")


def test_delete_removes_the_record_and_the_blob_with_its_last_record(server: AppServer, runner: dict[str, str],
                                                                       other: dict[str, str]) -> None:
    data = png((9, 99, 199))
    mine = sdk(server, runner).assets.from_bytes(data, filename="d.png", content_type="image/png")
    theirs = sdk(server, other).assets.from_bytes(data, filename="d.png", content_type="image/png")
    mine.commit()
    theirs.commit()
    blob = server.data_dir / "assets" / blake3_of(data).removeprefix("blake3:")[:2] / blake3_of(data)[7:]
    with pytest.raises(NotFound):  # someone else's asset reads as no asset
        sdk(server, other)._low.delete_asset(mine.id or "")
    asset_id = mine.id or ""
    mine.delete()
    assert blob.is_file()  # the other key's asset still holds the bytes
    with pytest.raises(NotFound):
        sdk(server, runner)._low.get_asset(asset_id)
    with pytest.raises(NotFound):  # a second delete is a 404
        sdk(server, runner)._low.delete_asset(asset_id)
    theirs.delete()
    assert not blob.exists()


def test_each_refusal_says_what_is_wrong(server: AppServer, http: httpx.Client, runner: dict[str, str]) -> None:
    client = sdk(server, runner)
    data = png((5, 5, 5))
    with pytest.raises(HashMismatch):
        client._low.post_assets(io.BytesIO(data), "image/png", "h.png", expected_hash=blake3_of(b"other bytes"))
    key = str(uuid.uuid4())
    client._low.post_assets(io.BytesIO(data), "image/png", "k.png", idempotency_key=key)
    with pytest.raises(IdempotencyKeyReuse):
        client._low.post_assets(io.BytesIO(data), "image/png", "k.png", idempotency_key=key)
    with pytest.raises(Unauthorized):
        sdk(server, None)._low.get_asset(str(uuid.uuid4()))

    def upload(content: bytes, content_type: str = "image/png", file_path: str = "x.png") -> httpx.Response:
        return http.post("/api/v2/assets", headers=runner, files={"file": (file_path, content, content_type)},
                         data={"content_type": content_type, "file_path": file_path})

    assert "not a file of that kind" in envelope(upload(b"<html><script>alert(1)</script>"), 422, "invalid_request")
    assert "plain file name" in envelope(upload(data, file_path="../../etc/x.png"), 422, "invalid_request")
    too_big = data + b"\0" * (MAX_UPLOAD_MB * 2**20)
    assert "--max-upload-mb" in envelope(upload(too_big), 413, "payload_too_large")
    assert "--max-upload-mb" in envelope(upload(too_big + b"\0" * 2**21), 413, "payload_too_large")  # over the cap
    # A file of no known kind is kept, but never served as what the client claimed
    kept = upload(b"\x00\x01binary", content_type="text/html", file_path="page.html")
    assert kept.status_code == 201, kept.text
    assert Asset.model_validate(kept.json()).content_type == "application/octet-stream"
    content = http.get(kept.json()["url"], headers=runner)
    assert content.headers["content-type"] == "application/octet-stream"
    assert content.headers["content-disposition"].startswith("attachment")


def test_the_same_input_file_sent_to_two_runs_is_stored_once(server: AppServer, http: httpx.Client,
                                                             admin: dict[str, str], runner: dict[str, str],
                                                             other: dict[str, str]) -> None:
    slug = publish_photo_app(http, admin)
    data = png((250, 0, 100))
    before = set(blobs(server))
    first, second = run_photo(http, slug, runner, data, "same.png"), run_photo(http, slug, other, data, "same.png")
    added = set(blobs(server)) - before
    assert [p.read_bytes() for p in added] == [data]  # one file on disk for both runs
    for run in (first, second):
        out = Image.open(io.BytesIO(http.get(run["outputs"][0]["url"], headers=runner).content)).convert("RGB")
        pixel = out.getpixel((3, 3))  # the engine read the stored bytes: inverted (float rounding aside)
        assert all(abs(got - want) <= 1 for got, want in zip(pixel, (5, 255, 155), strict=True)), pixel
    assert not (server.data_dir / "uploads" / first["id"]).exists()


def test_a_runs_output_is_an_asset_that_cannot_be_deleted_apart_from_its_run(
        server: AppServer, http: httpx.Client, admin: dict[str, str], runner: dict[str, str],
        other: dict[str, str]) -> None:
    slug = publish_photo_app(http, admin)
    run = run_photo(http, slug, runner, png((10, 20, 30)))
    # Each output is an asset from the run's end (recorded with it: no read of the job makes it)
    db = create_db_engine(f"sqlite:///{server.data_dir / 'publisher.db'}")
    with make_session_factory(db)() as session:
        artifact = session.query(Artifact).filter_by(run_id=run["id"]).one()
        made = session.query(AssetRow).filter_by(artifact_id=artifact.id).one()
        asset_id = made.id
        assert AssetStore(server.data_dir).of_output(session, artifact, expires_at=None).id == asset_id  # stable
    db.dispose()
    client = sdk(server, runner)
    asset = client._low.get_asset(asset_id)
    assert asset.job_id == run["id"] and asset.hash is None and asset.content_type == "image/png"
    with client._low.get_asset_content(asset_id) as content:
        assert content.read() == http.get(run["outputs"][0]["url"], headers=runner).content
    with pytest.raises(NotFound):  # the run's key owns its outputs
        sdk(server, other)._low.get_asset(asset_id)
    response = http.delete(f"/api/v2/assets/{asset_id}", headers=runner)
    envelope(response, 409, "asset_in_use")
    with sqlite3.connect(server.data_dir / "publisher.db") as con:
        assert con.execute("select count(*) from assets where id = ?", (asset_id,)).fetchone() == (1,)
