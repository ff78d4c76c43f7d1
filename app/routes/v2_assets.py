"""The Comfy API v2's assets (Comfy-Org's spec/openapi.yaml, VERSION 2.0.0): upload (multipart, deduplicated by
blake3), mint from a hash, probe by hash, read, delete, and the bytes (inline, with Range).

`assets_router(access)` builds the routes around a dependency saying who calls (an AssetAccess): the server-wide
router (`router`, any API key) is included at the root; an app's base URL includes another at `/apps/{slug}` with its
own dependency. The routes are outside /openapi.json: their contract is Comfy's document, and every answer is
checked against the SDK's models in the tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import FileResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from app.assets.sniff import checked_type
from app.assets.store import AssetStore, Stored, blake3_of, is_hash
from app.deps import ServicesDep
from app.routes.multipart import read_form
from app.services import Services
from app.v2.asset_access import AccessCheck, AssetAccess, key_access
from app.v2.asset_views import answer_json, asset_out
from app.v2.errors import V2Error
from app.v2.idempotency import SingleUseKeys
from app.v2.recent import recent_output
from db import crud_asset_owners
from db.models import Asset, utcnow
from runtimes.files import safe_filename

EXPIRES_IN = (60, 604_800)  # the contract's bounds of `expires_in` (seconds)
_MEDIA = ("image/", "video/", "audio/")
_READ_WHOLE_BYTES = 1 << 20  # smaller files are read in the database trip; larger ones stream (with ranges)
_INPUT_FOLDER = "input/"  # the engine's input folder, as some clients name it in file_path: the same plain name

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


def assets_router(access: Callable[[Request], AccessCheck]) -> APIRouter:
    """The asset routes for callers that `access` lets in (the check it makes of a request runs in a trip to the
    database: the dependency's own, or the content route's)."""
    router = APIRouter(tags=["v2 assets"], include_in_schema=False)

    async def who_calls(request: Request, services: ServicesDep) -> AssetAccess:
        return await services.db(access(request))

    # a default, not an Annotated alias: this module's annotations are strings, resolved among its globals
    caller = Depends(who_calls)
    used_keys = SingleUseKeys()

    @router.post("/api/v2/assets")
    async def post_asset(request: Request, services: ServicesDep, idempotency_key: IdempotencyKey = None,
                         who: AssetAccess = caller) -> Response:
        form = await read_form(request)  # who may upload was settled before the body was read
        try:
            upload = await _read_upload(form, services.settings.max_upload_bytes)
        finally:
            await form.close()
        scope = f"{who.key_id}:{idempotency_key}" if idempotency_key else None
        if scope is not None and not used_keys.claim(scope):
            raise V2Error("idempotency_key_reuse", f"The Idempotency-Key {idempotency_key[:80]!r} was used already "
                                                   "(keys are single-use for 24 h): send a new key.")
        try:
            stored = await services.db(_put, services.assets, upload, who,
                                       _expiry(services, upload["expires_in"]))
        except BaseException:
            if scope is not None:
                used_keys.release(scope)
            raise
        return _answer(stored.asset, request, 201 if stored.created_new else 200, created_new=stored.created_new)

    @router.post("/api/v2/assets/from-hash")
    async def asset_from_hash(request: Request, services: ServicesDep, who: AssetAccess = caller) -> Response:
        body = await _json_body(request)
        hash_ = body.get("hash")
        if not isinstance(hash_, str) or not is_hash(hash_):
            raise V2Error("invalid_request", "'hash' must be a content hash written blake3:<64 lowercase hex>.",
                          status=422)
        file_path = _plain_name(body["file_path"]) if body.get("file_path") is not None else None
        minted = await services.db(_mint, services.assets, hash_, file_path, who,
                                   _expiry(services, _expires_in(body.get("expires_in"))))
        if minted is None:
            raise V2Error("blob_not_found", "No stored content with this hash that this caller may use: upload the "
                                            "file with POST /api/v2/assets.")
        asset, new = minted
        return _answer(asset, request, 201 if new else 200, created_new=False)

    @router.head("/api/v2/assets/by-hash/{hash}")
    async def head_asset_by_hash(hash: str, services: ServicesDep, who: AssetAccess = caller) -> Response:
        found = is_hash(hash) and await services.db(_mintable, services.assets, hash, who)
        return Response(status_code=200 if found else 404)

    @router.get("/api/v2/assets/{id}")
    async def get_asset(id: str, request: Request, services: ServicesDep, who: AssetAccess = caller) -> Response:
        asset = await services.db(_visible, id, who)
        return _answer(asset, request, 200)

    @router.delete("/api/v2/assets/{id}")
    async def delete_asset(id: str, services: ServicesDep, who: AssetAccess = caller) -> Response:
        await services.db(_delete, services.assets, id, who)
        return Response(status_code=204)

    @router.get("/api/v2/assets/{id}/content")
    async def get_asset_content(id: str, request: Request, services: ServicesDep) -> Response:
        whole = "range" not in request.headers
        # A job's output just made, downloaded by its own key: from memory (the download that follows a job's end).
        recent = recent_output(services.runs.in_flight, id, request.path_params.get("slug"),
                               request.headers.get("authorization")) if whole else None
        if recent is not None:
            artifact, data = recent
            return _content_answer(data, artifact.mime, artifact.filename)
        # One trip: who calls, the asset, and a small file's bytes (a range, or a large file, streams).
        asset, removed, found = await services.db(_content, services.assets, id, access(request), whole)
        if removed or found is False:
            why = " (its run's files were removed by retention, --keep-outputs)" if removed else ""
            raise V2Error("not_found", f"The content of asset {id} is gone{why}.")
        return _content_answer(found, asset.content_type, asset.file_path)

    return router


router = assets_router(key_access)


def _content_answer(found: bytes | Path, content_type: str, file_path: str | None) -> Response:
    """An asset's bytes (or its file, streamed with ranges)."""
    if isinstance(found, bytes):
        response: Response = Response(found, media_type=content_type, headers={"Accept-Ranges": "bytes"})
    else:
        response = FileResponse(found, media_type=content_type)
    # Bytes a caller sent, on the API's origin: never let a browser run them as a page.
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox"
    if not content_type.startswith(_MEDIA) or content_type == "image/svg+xml":
        name = safe_filename(file_path or "", "asset")
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _answer(asset: Asset, request: Request, status: int, *, created_new: bool | None = None) -> Response:
    return Response(answer_json(asset_out(asset, request, created_new=created_new)), status_code=status,
                    media_type="application/json")


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise V2Error("invalid_request", "The body must be a JSON object such as {\"hash\": \"blake3:...\"}.",
                      status=422) from None
    if not isinstance(body, dict):
        raise V2Error("invalid_request", "The body must be a JSON object such as {\"hash\": \"blake3:...\"}.",
                      status=422)
    return body


def _field(form: Any, name: str) -> str | None:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else None


async def _read_upload(form: Any, max_bytes: int) -> dict[str, Any]:
    """The upload's checked fields and bytes; V2Error naming what is wrong."""
    file = form.get("file")
    if not isinstance(file, UploadFile):
        raise V2Error("invalid_request", "The multipart body has no 'file' part: send the bytes as a file part "
                                         "named 'file'.", status=422)
    claimed, file_path = _field(form, "content_type"), _field(form, "file_path")
    if not claimed:
        raise V2Error("invalid_request", "'content_type' is missing: send the file's type, e.g. image/png.",
                      status=422)
    if not file_path:
        raise V2Error("invalid_request", "'file_path' is missing: send the file's name, e.g. photo.png.", status=422)
    name = _plain_name(file_path)
    expires_in = _expires_in(_field(form, "expires_in"))
    data = await file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise V2Error("payload_too_large", f"{name} is larger than this server's upload limit of {max_bytes:,} bytes "
                                           "(--max-upload-mb): send a smaller file.")
    digest = await asyncio.to_thread(blake3_of, data)
    expected = _field(form, "expected_hash")
    if expected and expected.lower() != digest:
        raise V2Error("hash_mismatch", f"The bytes received for {name} hash to {digest}, not the expected_hash "
                                       f"{expected[:80]}: the file changed or was cut short; send it again.")
    content_type = checked_type(claimed, data)
    if content_type is None:
        raise V2Error("invalid_request", f"{name} was sent as {claimed[:60]}, but its bytes are not a file of that "
                                         "kind: send the file itself, with its real content_type.", status=422)
    return {"data": data, "file_path": name, "content_type": content_type, "expires_in": expires_in}


def _plain_name(file_path: Any) -> str:
    """The file name a client gave, kept only as a plain name: nothing it names leaves its folder."""
    text = str(file_path).strip().replace("\\", "/").removeprefix(_INPUT_FOLDER)
    if not text or "/" in text or text in (".", "..") or "\x00" in text or len(text) > 255:
        raise V2Error("invalid_request", f"file_path {text[:80]!r} must be a plain file name such as photo.png "
                                         "(no folders, no '..', at most 255 characters).", status=422)
    return text


def _expires_in(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        seconds = -1
    low, high = EXPIRES_IN
    if not low <= seconds <= high or isinstance(value, bool):
        raise V2Error("invalid_request", f"expires_in must be whole seconds from {low} to {high} (7 days), got "
                                         f"{str(value)[:40]!r}.", status=422)
    return seconds


def _expiry(services: Services, expires_in: int | None) -> datetime | None:
    """An asset's retention deadline: the caller's expires_in, else the server's --keep-inputs, else none."""
    if expires_in is not None:
        return utcnow() + timedelta(seconds=expires_in)
    days = services.settings.keep_inputs_days
    return utcnow() + timedelta(days=days) if days is not None else None


def _put(session: Session, store: AssetStore, upload: dict[str, Any], who: AssetAccess,
         expires_at: datetime | None) -> Stored:
    return store.put(session, upload["data"], content_type=upload["content_type"], file_path=upload["file_path"],
                     api_key_id=who.key_id, expires_at=expires_at)


def _mintable(session: Session, store: AssetStore, hash_: str, who: AssetAccess) -> Asset | None:
    source = crud_asset_owners.upload_by_hash(session, hash_=hash_, api_key_id=who.key_id, any_owner=who.admin)
    return source if source is not None and store.has_blob(hash_) else None


def _mint(session: Session, store: AssetStore, hash_: str, file_path: str | None, who: AssetAccess,
          expires_at: datetime | None) -> tuple[Asset, bool] | None:
    """(the asset, whether it is new): the caller's identical reference (same content, same name) is returned as
    it is, its retention extended, never shortened; otherwise a new record over the stored bytes."""
    source = _mintable(session, store, hash_, who)
    if source is None:
        return None
    name = file_path or source.file_path
    same = crud_asset_owners.same_reference(session, hash_=hash_, api_key_id=who.key_id, file_path=name)
    if same is not None:
        if same.expires_at is not None and (expires_at is None or expires_at > same.expires_at):
            same.expires_at = expires_at
            session.commit()
        return same, False
    minted = store.from_hash(session, hash_, file_path=name, content_type=source.content_type,
                             api_key_id=who.key_id, expires_at=expires_at)
    return (minted, True) if minted is not None else None


def _visible(session: Session, asset_id: str, who: AssetAccess) -> Asset:
    """The asset, if it is live and the caller may see it; else not_found (someone else's reads the same)."""
    return _owned(session, asset_id, who).asset


def _owned(session: Session, asset_id: str, who: AssetAccess) -> crud_asset_owners.Owned:
    found = crud_asset_owners.live_with_owner(session, asset_id=asset_id[:64])
    if found is None or not who.may_see(found.owner):
        raise V2Error("not_found", f"No asset {asset_id[:64]!r} (it never existed, was deleted or expired, or "
                                   "belongs to another key).")
    return found


def _with_removal(session: Session, asset_id: str, who: AssetAccess) -> tuple[Asset, bool]:
    """The asset and whether retention removed its file (a run's output): one query."""
    found = _owned(session, asset_id, who)
    return found.asset, bool((found.run_files_removed or {}).get("outputs"))


def _content(session: Session, store: AssetStore, asset_id: str, access: AccessCheck, whole: bool
             ) -> tuple[Asset, bool, bytes | Path | bool]:
    """The asset, whether retention removed its file, and its bytes (a small file, asked for whole), its path (to
    stream), or False when it is gone."""
    asset, removed = _with_removal(session, asset_id, access(session))
    path = store.file(asset)
    if removed or path is None:
        return asset, removed, False
    try:
        if not path.is_file():
            return asset, removed, False
        return asset, removed, path.read_bytes() if whole and path.stat().st_size <= _READ_WHOLE_BYTES else path
    except OSError:
        return asset, removed, False


def _delete(session: Session, store: AssetStore, asset_id: str, who: AssetAccess) -> None:
    asset = _visible(session, asset_id, who)
    if asset.artifact_id is not None:  # a job's output: it goes with its run (retention, or deleting the run)
        raise V2Error("asset_in_use", "This asset cannot be deleted while the platform still depends on it.")
    store.delete(session, asset)
