"""Fetch an app's model files from the Hugging Face Hub into a models/ folder, each checked against the Hub's size
and sha256 (or the one the workflow declares) and stored under the name the workflow uses.

Standard library and huggingface_hub only: an image build runs it as a script, before the project's code is copied
in (`python fetch_models.py MODELS_JSON MODELS_DIR [--token-file FILE]`), and a worker imports it to fill a network
volume at start (`ensure_models`). MODELS_JSON is the bundle's models.json: a list of
{"folder", "filename", "repo", "file", "revision", "sha256"} (revision and sha256 may be null).

A file already present is kept without asking the Hub: every file is written whole (a temporary name, then an
atomic rename), and only after its check, so a present file is a checked one (or one the user put there).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

_HEX = frozenset("0123456789abcdef")
# A gated or private repository answers as if it were missing without a token.
TOKEN_HINT = ("\nA gated or private model needs a Hugging Face token: at an image build, "
              "docker build --secret id=hf_token,env=HF_TOKEN ...; on a worker, HF_TOKEN in its environment.")


class ModelFetchError(RuntimeError):
    """A model could not be fetched or failed its check; the message names the file and the reason."""


def read_models(models_file: Path) -> list[dict[str, Any]]:
    """The entries of a models.json, each with a folder and file name that stay inside models/."""
    entries = json.loads(Path(models_file).read_text())
    if not isinstance(entries, list):
        raise ModelFetchError(f"{models_file}: expected a list of models")
    for entry in entries:
        parts = str(entry.get("filename", "")).replace("\\", "/").split("/")
        if (not entry.get("folder") or "/" in entry["folder"] or entry["folder"] in (".", "..")
                or any(part in ("", ".", "..") for part in parts)):
            raise ModelFetchError(f"{models_file}: {entry.get('folder')}/{entry.get('filename')} is not a file name "
                                  "under models/<folder>/")
    return entries


def missing_models(models_file: Path, models_dir: Path) -> list[dict[str, Any]]:
    """The entries whose file is not in `models_dir` yet."""
    return [entry for entry in read_models(models_file)
            if not (Path(models_dir) / entry["folder"] / entry["filename"]).is_file()]


def ensure_models(models_file: Path, models_dir: Path, *, token: str | None = None,
                  log: Callable[[str], None] = print) -> list[str]:
    """Fetch each model of `models_file` that `models_dir` lacks; returns the folder/file names fetched. With every
    file present it returns at once, without network."""
    missing = missing_models(models_file, models_dir)
    if not missing:
        return []
    fetched = []
    with tempfile.TemporaryDirectory(prefix="hf-") as cache:
        for entry in missing:
            name = f"{entry['folder']}/{entry['filename']}"
            log(f"fetching model {name} from hf://{entry['repo']}/{entry['file']}")
            fetch_model(Path(models_dir), entry, cache, token=token)
            fetched.append(name)
    return fetched


def fetch_model(models_dir: Path, entry: dict[str, Any], cache: str, *, token: str | None = None) -> Path:
    """One file from its Hub repo into models_dir/folder/filename, checked; returns its path."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    target = models_dir / entry["folder"] / entry["filename"]
    if not target.resolve().is_relative_to(models_dir.resolve()):
        raise ModelFetchError(f"{entry['folder']}/{entry['filename']} would land outside {models_dir}")
    repo, repo_file, revision = entry["repo"], entry["file"], entry.get("revision")
    where = f"hf://{repo}/{repo_file}" + (f"@{revision}" if revision else "")
    try:
        meta = get_hf_file_metadata(hf_hub_url(repo, repo_file, revision=revision), token=token)
        fetched = Path(hf_hub_download(repo_id=repo, filename=repo_file, revision=revision, cache_dir=cache,
                                       token=token))
    except Exception as exc:  # the Hub's own words: not found, gated (a token is needed), no network
        needs_token = type(exc).__name__ in ("GatedRepoError", "RepositoryNotFoundError")
        hint = TOKEN_HINT if token is None and needs_token else ""
        raise ModelFetchError(f"{where}: {type(exc).__name__}: {exc}{hint}") from None
    size = fetched.stat().st_size
    if meta.size is not None and size != meta.size:
        raise ModelFetchError(f"{where}: got {size} bytes, the Hub says {meta.size}; not stored")
    etag = (meta.etag or "").lower().strip('"')
    hub_hash = etag if len(etag) == 64 and set(etag) <= _HEX else None  # a large (LFS) file's etag is its sha256
    declared = entry.get("sha256")
    expected = declared or hub_hash
    if expected is not None:
        digest = hashlib.sha256()
        with open(fetched, "rb") as handle:
            while chunk := handle.read(1 << 24):
                digest.update(chunk)
        if digest.hexdigest() != expected:
            whose = "the workflow's declared" if declared else "the Hub's"
            raise ModelFetchError(f"{where}: sha256 {digest.hexdigest()} differs from {whose} {expected}; not stored")
    target.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own: two workers filling the same volume at once never write into one file.
    handle, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(handle)
    try:
        shutil.copyfile(fetched, partial)  # the cache and the models folder may be different file systems
        os.replace(partial, target)  # all or nothing, under the workflow's name
    finally:
        Path(partial).unlink(missing_ok=True)
    return target


def main(argv: list[str]) -> int:
    args = list(argv)
    token = os.environ.get("HF_TOKEN") or None
    if "--token-file" in args:  # a BuildKit secret: read here, never put in the image's environment
        at = args.index("--token-file")
        token_file = Path(args[at + 1]) if at + 1 < len(args) else None
        del args[at:at + 2]
        if token_file is not None and token_file.is_file():
            token = token_file.read_text().strip() or token
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        fetched = ensure_models(Path(args[0]), Path(args[1]), token=token)
    except ModelFetchError as exc:
        print(f"fetch_models: {exc}", file=sys.stderr)
        return 1
    print(f"fetch_models: {len(fetched)} model(s) fetched into {args[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
