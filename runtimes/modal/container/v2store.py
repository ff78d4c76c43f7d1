"""Where a deployment keeps its Comfy API v2 state: assets (content-addressed, blake3) and job records.

Several endpoint containers may serve one deployment, so the state lives in a key-value store they share: a
`modal.Dict` in the generated app (`ModalDictKV`), an in-process dict where the endpoint is served locally
(`MemoryKV`, the tests). Every entry carries its own deadline and reads treat an expired entry as absent (a
modal.Dict also drops entries after 7 days without reads or writes). Blobs are cut into chunks of `CHUNK_BYTES`
so no single entry comes near a store's request size limit; the blob's meta entry is written last, so a reader
never sees half a blob.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import blake3

CHUNK_BYTES = 1 << 20
ASSET_RETENTION_S = 24 * 3600  # an uploaded input, unless the upload asks for another retention (60 s .. 7 d)
JOB_RETENTION_S = 7 * 24 * 3600  # a job's record and its outputs
IDEMPOTENCY_S = 24 * 3600  # the contract: keys expire after 24 h
OUTPUT_IDS = uuid.UUID("5d0c1e7e-8f6b-4c59-9a41-6f3c2b1d0e21")  # output asset ids: uuid5(this, "job/index")


class KV(Protocol):
    async def get(self, key: str) -> Any | None: ...

    async def put(self, key: str, value: Any, *, expires_at: float, if_absent: bool = False) -> bool:
        """Store `value` until `expires_at` (epoch s); with if_absent, only when the key is free. True if stored."""

    async def delete(self, key: str) -> None: ...


class MemoryKV:
    """One process's store: the endpoint served locally (in tests), where one process is the whole deployment."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[Any, float]] = {}

    async def get(self, key: str) -> Any | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[1] <= time.time():
            del self._items[key]
            return None
        return item[0]

    async def put(self, key: str, value: Any, *, expires_at: float, if_absent: bool = False) -> bool:
        if if_absent and await self.get(key) is not None:
            return False
        self._items[key] = (value, expires_at)
        if len(self._items) % 256 == 0:
            self._sweep()
        return True

    async def delete(self, key: str) -> None:
        self._items.pop(key, None)

    def _sweep(self) -> None:
        now = time.time()
        for key in [k for k, (_, deadline) in self._items.items() if deadline <= now]:
            del self._items[key]


class ModalDictKV:
    """A `modal.Dict` shared by all of a deployment's endpoint containers."""

    def __init__(self, store: Any) -> None:
        self.store = store  # modal.Dict.from_name(..., create_if_missing=True)

    async def get(self, key: str) -> Any | None:
        item = await self.store.get.aio(key)
        if item is None:
            return None
        if item["expires_at"] <= time.time():
            await self.store.pop.aio(key, None)
            return None
        return item["value"]

    async def put(self, key: str, value: Any, *, expires_at: float, if_absent: bool = False) -> bool:
        item = {"value": value, "expires_at": expires_at}
        if if_absent:
            await self.get(key)  # drops an expired entry: it does not hold the key
        return bool(await self.store.put.aio(key, item, skip_if_exists=if_absent))

    async def delete(self, key: str) -> None:
        await self.store.pop.aio(key, None)


def blake3_of(data: bytes) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


def hex_of(hash: str) -> str | None:
    """The hex digest of a `blake3:<hex>` hash, or None for anything else."""
    algo, _, hexdigest = hash.partition(":")
    if algo != "blake3" or len(hexdigest) != 64 or any(c not in "0123456789abcdef" for c in hexdigest):
        return None
    return hexdigest


@dataclass(frozen=True)
class AssetRecord:
    id: str
    hash: str
    size_bytes: int
    content_type: str
    file_path: str | None
    created_at: float
    expires_at: float
    job_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class AssetStore:
    """Asset records (uuid) over content-addressed blobs: the same bytes uploaded twice are stored once."""

    def __init__(self, kv: KV, *, max_bytes: int) -> None:
        self.kv = kv
        self.max_bytes = max_bytes

    async def add(self, data: bytes, *, content_type: str, file_path: str | None, expires_at: float,
                  job_id: str | None = None, asset_id: str | None = None) -> tuple[AssetRecord, bool]:
        """Store the bytes (once per hash) and mint an asset over them. Returns (record, created_new)."""
        hash = blake3_of(data)
        created_new = await self._put_blob(hash, data, content_type, expires_at)
        record = AssetRecord(id=asset_id or str(uuid.uuid4()), hash=hash, size_bytes=len(data),
                             content_type=content_type, file_path=file_path, created_at=time.time(),
                             expires_at=expires_at, job_id=job_id)
        await self._save(record)
        return record, created_new

    async def mint(self, hash: str, *, file_path: str | None, expires_at: float) -> tuple[AssetRecord, bool] | None:
        """An asset over a blob already stored: the one uploaded under this name with these bytes if there is one
        (returned as is: False), else a new one (True). None when there is no such blob."""
        meta = await self.blob(hash)
        if meta is None:
            return None
        await self._extend_blob(hash, meta, expires_at)
        same = await self.by_name(file_path) if file_path else None
        if same is not None and same.hash == hash:
            return same, False
        record = AssetRecord(id=str(uuid.uuid4()), hash=hash, size_bytes=meta["size"],
                             content_type=meta["content_type"], file_path=file_path, created_at=time.time(),
                             expires_at=expires_at)
        await self._save(record)
        return record, True

    async def blob(self, hash: str) -> dict[str, Any] | None:
        return await self.kv.get(f"blob:{hash}")

    async def get(self, asset_id: str) -> AssetRecord | None:
        found = await self.kv.get(f"asset:{asset_id}")
        return AssetRecord(**found) if found else None

    async def by_name(self, file_path: str) -> AssetRecord | None:
        """The latest asset uploaded under this file name (a workflow may name its input by file name)."""
        asset_id = await self.kv.get(f"name:{file_path}")
        return await self.get(asset_id) if asset_id else None

    async def read(self, record: AssetRecord) -> bytes:
        meta = await self.blob(record.hash)
        if meta is None:
            raise LookupError(f"the bytes of asset {record.id} are gone (expired)")
        parts = [await self.kv.get(f"chunk:{record.hash}:{i}") for i in range(meta["chunks"])]
        if any(part is None for part in parts):
            raise LookupError(f"the bytes of asset {record.id} are incomplete (expired)")
        return b"".join(parts)  # type: ignore[arg-type]

    async def delete(self, asset_id: str) -> None:
        """The record only: its blob may back other assets, and expires on its own."""
        await self.kv.delete(f"asset:{asset_id}")

    async def _save(self, record: AssetRecord) -> None:
        await self.kv.put(f"asset:{record.id}", record.to_dict(), expires_at=record.expires_at)
        if record.file_path and record.job_id is None:
            await self.kv.put(f"name:{record.file_path}", record.id, expires_at=record.expires_at)

    async def _put_blob(self, hash: str, data: bytes, content_type: str, expires_at: float) -> bool:
        meta = await self.blob(hash)
        if meta is not None:
            await self._extend_blob(hash, meta, expires_at)
            return False
        chunks = [data[i:i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]
        for i, chunk in enumerate(chunks):
            await self.kv.put(f"chunk:{hash}:{i}", chunk, expires_at=expires_at)
        await self.kv.put(f"blob:{hash}", {"size": len(data), "chunks": len(chunks), "content_type": content_type,
                                           "expires_at": expires_at}, expires_at=expires_at)
        return True

    async def _extend_blob(self, hash: str, meta: dict[str, Any], expires_at: float) -> None:
        """Re-referencing content extends its retention, never shortens it."""
        if expires_at <= meta["expires_at"]:
            return
        for i in range(meta["chunks"]):
            chunk = await self.kv.get(f"chunk:{hash}:{i}")
            if chunk is not None:
                await self.kv.put(f"chunk:{hash}:{i}", chunk, expires_at=expires_at)
        await self.kv.put(f"blob:{hash}", {**meta, "expires_at": expires_at}, expires_at=expires_at)


class JobStore:
    """Job records: id -> the Modal call, the workflow, times, and the outcome once it is known."""

    def __init__(self, kv: KV) -> None:
        self.kv = kv

    async def get(self, job_id: str) -> dict[str, Any] | None:
        return await self.kv.get(f"job:{job_id}")

    async def save(self, job: dict[str, Any]) -> None:
        await self.kv.put(f"job:{job['id']}", job, expires_at=job["expires_at"])

    async def delete(self, job_id: str) -> None:
        await self.kv.delete(f"job:{job_id}")

    async def claim_key(self, key: str, *, now: float) -> bool:
        """Idempotency-Key: single use. False when it was presented before (within 24 h)."""
        return await self.kv.put(f"idempotency:{key}", True, expires_at=now + IDEMPOTENCY_S, if_absent=True)

    async def release_key(self, key: str) -> None:
        await self.kv.delete(f"idempotency:{key}")


def output_asset_id(job_id: str, index: int) -> str:
    """The same id on every endpoint container that records the job's outputs (they may race to do it)."""
    return str(uuid.uuid5(OUTPUT_IDS, f"{job_id}/{index}"))
