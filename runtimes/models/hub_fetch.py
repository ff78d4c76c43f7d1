"""Fetch one model file from the Hugging Face Hub into the engines' models folder, under the name the workflow uses.

One HEAD first (`get_hf_file_metadata`, no retries: an unreachable hub fails within seconds, a gated or missing
repo before any byte), then the bytes into `<name>.part` (resumed with a Range request after a cut, within this
process by huggingface_hub and across restarts from the .part we keep), checked (size; sha256 against the Hub's
etag when it is one, and against the hash the workflow declares), then moved into place. The token is
huggingface_hub's own (HF_TOKEN, `hf auth login`): we never read, log or store it ourselves.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from filelock import FileLock, Timeout

from publisher.models import HF_SOURCE

from .store import LOCKS, PART_SUFFIX, VERIFIED, ModelPathError, target_path

DEFAULT_ENDPOINT = "https://huggingface.co"
HEAD_TIMEOUT_S = 10.0
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_HASH_CHUNK = 8 * 1024 * 1024
TOKEN_HELP = "set HF_TOKEN or run `hf auth login`"

Progress = Callable[[int, int | None], None]  # bytes done, total (None: unknown)
ErrorKind = Literal["bad_source", "bad_path", "repo_not_found", "revision_not_found", "file_not_found", "gated",
                    "no_access", "unreachable", "not_a_hub", "http", "size_mismatch", "hash_mismatch", "busy"]


class ModelFetchError(Exception):
    """A file that could not be fetched; `kind` says which way it failed, the message what to do."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class HubFile:
    repo: str
    path: str
    revision: str  # "main" unless the source names one

    @classmethod
    def parse(cls, source: str) -> HubFile:
        found = HF_SOURCE.match(source) if isinstance(source, str) else None
        if found is None:
            raise ModelFetchError("bad_source", f"{source!r} is not a Hugging Face source: write "
                                                "hf://owner/repo/path/to/file.safetensors, optionally @revision")
        return cls(found["repo"], found["file"], found["rev"] or "main")


@dataclass(frozen=True)
class FetchOutcome:
    path: Path
    size: int
    fetched: bool  # False: the file was already there (same size, and hash when known)
    verified: bool = True  # False: present, but the hub could not be asked to compare (offline)


def endpoint_now() -> str:
    """HF_ENDPOINT as it is set now (huggingface_hub reads it once, at import)."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def fetch_model(source: str, models_dir: Path, folder: str, name: str, *, sha256: str | None = None,
                force: bool = False, progress: Progress | None = None) -> FetchOutcome:
    """Fetch `source` (hf://owner/repo/path[@rev]) into models/<folder>/<name>; skipped when already there."""
    hub_file = HubFile.parse(source)
    try:
        target = target_path(models_dir, folder, name)
    except ModelPathError as exc:
        raise ModelFetchError("bad_path", str(exc)) from exc
    expected = sha256.strip().lower() if sha256 else None
    if expected is not None and not _SHA256.match(expected):
        raise ModelFetchError("bad_source", f"the declared hash of {name} is not a sha256 (64 hex digits)")
    target.parent.mkdir(parents=True, exist_ok=True)
    # One fetch of a file at a time, across processes (the server's jobs, `models pull`); the lock files live in
    # a hidden folder, not beside the models the engine lists.
    lock_path = models_dir.resolve() / LOCKS / folder / (name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ModelFetchError("busy", f"{folder}/{name} is being fetched already (by another process or job); "
                                      "wait for it to finish") from None
    try:
        marker = models_dir.resolve() / VERIFIED / folder / (name + ".json")  # its checked sha256
        return _fetch_locked(hub_file, target, marker, folder, name, expected, force, progress)
    finally:
        lock.release()


def _fetch_locked(hub_file: HubFile, target: Path, marker: Path, folder: str, name: str, expected: str | None,
                  force: bool, progress: Progress | None) -> FetchOutcome:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    endpoint = endpoint_now()
    url = hf_hub_url(hub_file.repo, hub_file.path, revision=hub_file.revision, endpoint=endpoint)
    try:
        meta = get_hf_file_metadata(url, timeout=HEAD_TIMEOUT_S, endpoint=endpoint)
    except Exception as exc:
        error = _hub_error(exc, hub_file, endpoint)
        if error.kind == "unreachable" and target.is_file() and not force:
            return FetchOutcome(target, target.stat().st_size, fetched=False, verified=False)
        raise error from exc
    etag_hash = meta.etag.lower() if meta.etag and _SHA256.match(meta.etag.lower()) else None
    where = f"hf://{hub_file.repo}/{hub_file.path}@{hub_file.revision}"
    if expected and etag_hash and expected != etag_hash:
        raise ModelFetchError("hash_mismatch", f"{where} is not the file the workflow declares for {folder}/{name}: "
                                               f"its sha256 is {etag_hash}, the workflow says {expected}")
    want_hash = expected or etag_hash
    if not force and target.is_file() and (meta.size is None or target.stat().st_size == meta.size) and \
            (want_hash is None or _known_hash(target, marker) == want_hash):
        return FetchOutcome(target, target.stat().st_size, fetched=False)
    part = target.with_name(target.name + PART_SUFFIX)
    if force or (part.exists() and meta.size is not None and part.stat().st_size > meta.size):
        part.unlink(missing_ok=True)
    _download(meta.location or url, part, meta.size, endpoint, hub_file, progress)
    size = part.stat().st_size
    if meta.size is not None and size != meta.size:
        part.unlink(missing_ok=True)
        raise ModelFetchError("size_mismatch", f"{where} arrived with {size} bytes, the hub says {meta.size}; "
                                               "fetch it again")
    if want_hash is not None and (got := _sha256_of(part)) != want_hash:
        part.unlink(missing_ok=True)
        raise ModelFetchError("hash_mismatch", f"{where} arrived with sha256 {got}, expected {want_hash} "
                                               f"({'the workflow' if expected else 'the hub'}'s hash); the file was "
                                               "removed")
    os.replace(part, target)
    if want_hash is not None:
        _remember_hash(target, marker, want_hash)
    return FetchOutcome(target, size, fetched=True)


def _download(location: str, part: Path, size: int | None, endpoint: str, hub_file: HubFile,
              progress: Progress | None) -> None:
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    headers = build_hf_headers()  # the token, if any, from huggingface_hub's own lookup
    if urlparse(location).netloc != urlparse(endpoint).netloc:
        headers.pop("authorization", None)  # a CDN is never sent the token (as huggingface_hub does)
    resume = part.stat().st_size if part.exists() else 0
    try:
        with part.open("ab") as file:
            http_get(location, file, resume_size=resume, headers=headers, expected_size=size,
                     displayed_filename=part.name, tqdm_class=partial(_ProgressBar, progress))  # type: ignore[arg-type]
    except ModelFetchError:
        raise
    except Exception as exc:
        raise _hub_error(exc, hub_file, endpoint) from exc


class _ProgressBar:
    """What huggingface_hub's download loop drives (a tqdm stand-in): it reports bytes done/total to a callback."""

    def __init__(self, callback: Progress | None, *, total: int | None = None, initial: int = 0,
                 **_: Any) -> None:
        self.callback, self.total, self.done = callback, total, initial
        self._report()

    def update(self, n: int) -> None:
        self.done += n
        self._report()

    def _report(self) -> None:
        if self.callback is not None:
            self.callback(self.done, self.total)

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _remember_hash(target: Path, marker: Path, sha256: str) -> None:
    stat = target.stat()
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}))


def _known_hash(target: Path, marker: Path) -> str:
    """The file's sha256: remembered from its last check while its size and time are unchanged (hashing
    gigabytes on every pull would take minutes), else computed (and remembered)."""
    stat = target.stat()
    try:
        known = json.loads(marker.read_text())
        if known["size"] == stat.st_size and known["mtime_ns"] == stat.st_mtime_ns:
            return str(known["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    digest = _sha256_of(target)
    _remember_hash(target, marker, digest)
    return digest


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _hub_error(exc: Exception, hub_file: HubFile, endpoint: str) -> ModelFetchError:
    """huggingface_hub's typed errors as one error type that says what to do (never quoting a token)."""
    import httpx
    from huggingface_hub import get_token
    from huggingface_hub.errors import (
        EntryNotFoundError,
        FileMetadataError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo, page = hub_file.repo, f"{endpoint}/{hub_file.repo}"
    if isinstance(exc, GatedRepoError):
        if get_token() is None:
            return ModelFetchError("gated", f"{repo} is gated: accept its terms on {page} and {TOKEN_HELP}")
        return ModelFetchError("no_access", f"{repo} is gated and your Hugging Face token has no access to it: "
                                            f"accept its terms on {page} with the account the token belongs to")
    if isinstance(exc, RevisionNotFoundError):
        return ModelFetchError("revision_not_found", f"{repo} has no revision {hub_file.revision!r} on {endpoint}: "
                                                     "fix the @revision of the source")
    if isinstance(exc, RepositoryNotFoundError):
        token_hint = f" (if it is private, {TOKEN_HELP})" if get_token() is None else ""
        return ModelFetchError("repo_not_found", f"no repository {repo} on {endpoint}{token_hint}: check the "
                                                 "source's owner/repo")
    if isinstance(exc, EntryNotFoundError):
        return ModelFetchError("file_not_found", f"{repo} has no file {hub_file.path!r} at revision "
                                                 f"{hub_file.revision!r}: check the source's path")
    if isinstance(exc, FileMetadataError):
        return ModelFetchError("not_a_hub", f"{endpoint} does not answer as a Hugging Face Hub (check HF_ENDPOINT)")
    if isinstance(exc, LocalEntryNotFoundError | OfflineModeIsEnabled | httpx.TransportError):
        return ModelFetchError("unreachable", f"cannot reach {endpoint} to fetch hf://{repo}/{hub_file.path} "
                                              "(offline? check the network, a proxy or HF_ENDPOINT, then retry: a "
                                              "partial download resumes)")
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        return ModelFetchError("http", f"{endpoint} answered HTTP {exc.response.status_code} for "
                                       f"hf://{repo}/{hub_file.path}")
    if isinstance(exc, OSError):  # huggingface_hub's size "consistency check", a full disk
        return ModelFetchError("size_mismatch" if "Consistency check" in str(exc) else "http",
                               f"hf://{repo}/{hub_file.path}: {str(exc).splitlines()[0]}")
    raise exc
