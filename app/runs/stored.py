"""How a run keeps its inputs: values as submitted (the drawn seed included) and uploads by their content, so a
queued run holds no file in memory; and back, into what a runner needs.

An upload is kept once per content in the data dir's blob store (app.assets.store, shared with the Comfy API v2's
assets): `{"blob": "blake3:<hex>", "filename": "<input>-<file>"}`; the same file sent to a thousand runs is one file
on disk. Runs recorded before that kept theirs under the uploads folder (`{"upload": "<run id>/<input>-<file>"}`);
both are read."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.assets.store import blob_path, keep_blob
from app.errors import NotFound, Unavailable
from db.models import Run
from publisher import AppSpec
from runtimes.contract import RunRequest, Upload
from runtimes.files import safe_filename

log = logging.getLogger(__name__)


Kept = dict[str, str]  # {"blob": "blake3:<hex>", "filename": "<input>-<file>"}


def blobs_root(uploads_dir: Path) -> Path:
    """The data dir, which holds the blob store beside the uploads folder (Settings.uploads_dir is DATA_DIR/uploads)."""
    return uploads_dir.parent


def store_uploads(uploads_dir: Path, run_id: str, uploads: Mapping[str, tuple[str, bytes]]) -> dict[str, Kept]:
    """Keep a run's uploaded files by their content; input name -> what the run record keeps of it."""
    stored: dict[str, Kept] = {}
    for name, (filename, data) in uploads.items():
        try:
            hash_, _, _ = keep_blob(blobs_root(uploads_dir), data)
        except OSError as exc:  # a full disk, a folder made read-only: the server's problem, not the caller's
            where = exc.filename or blobs_root(uploads_dir)
            log.error("cannot store the upload of input %r of run %s under %s: %s", name, run_id, where, exc)
            raise Unavailable(f"The server cannot store uploads: {exc.strerror or exc} on {where}. Its operator "
                              "must make that folder writable (or free space); then send the run again.") from None
        stored[name] = {"blob": hash_, "filename": f"{safe_filename(name)}-{safe_filename(filename, 'upload')}"}
    return stored


def encode(values: Mapping[str, Any], stored_uploads: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """What the run record keeps as its inputs."""
    return {**values, **{name: dict(kept) for name, kept in stored_uploads.items()}}


def _is_upload(value: Any) -> bool:
    return isinstance(value, dict) and ("blob" in value or "upload" in value)


def _stored_at(value: Mapping[str, Any], uploads_dir: Path) -> tuple[str, Path]:
    """(the file name the engine gets, where the bytes are) of one kept upload."""
    if "blob" in value:
        return str(value.get("filename") or "upload"), blobs_root(uploads_dir) / blob_path(str(value["blob"]))
    path = uploads_dir / value["upload"]
    return path.name, path


def request_for(run: Run, spec: AppSpec, uploads_dir: Path) -> RunRequest:
    """What a runner needs. Uploads go by the path they were stored at: they are read when the run starts."""
    inputs = run.inputs or {}
    uploads: dict[str, Upload] = {name: _stored_at(value, uploads_dir) for name, value in inputs.items()
                                  if _is_upload(value)}
    values = {name: value for name, value in inputs.items() if not _is_upload(value)}
    return RunRequest(run_id=run.id, workflow=spec.workflow, bindings=spec.inputs, values=values, uploads=uploads,
                      output_nodes=spec.output_nodes, timeout_s=spec.timeout_s, keep_metadata=spec.keep_metadata,
                      loaded=spec.loaded_workflow)


def rerun_inputs(run: Run, uploads_dir: Path) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
    """A run's inputs to submit again: uploads as submitted (their stored files), every other value as applied, so
    the seed drawn is used again. Reads the files: call it from a worker thread."""
    submitted = run.inputs or {}
    if (run.files_removed or {}).get("inputs"):
        raise NotFound(f"The uploaded files of run {run.id} were removed by retention (--keep-inputs) on "
                       f"{run.files_removed['inputs'][:10]}: run the app again with new files instead.")
    uploads = {}
    for name, value in submitted.items():
        if _is_upload(value):
            filename, path = _stored_at(value, uploads_dir)
            uploads[name] = (filename, path.read_bytes())
    # "<node id>.<input>": a text the run made for the workflow itself (a dynamic prompt's choice), no input of the app
    values = {name: value for name, value in (run.applied or submitted).items() if name not in uploads
              and "." not in name}
    return values, uploads
