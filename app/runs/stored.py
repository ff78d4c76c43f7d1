"""How a run keeps its inputs: values as submitted (the drawn seed included) and uploads by the path they were
stored at under the uploads folder (`{"upload": "<run id>/<input>-<file>"}`), so a queued run holds no file in
memory; and back, into what a runner needs."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.errors import Unavailable
from app.runs.storage import write_file
from db.models import Run
from publisher import AppSpec
from runtimes.contract import RunRequest, Upload
from runtimes.files import safe_filename

log = logging.getLogger(__name__)


def store_uploads(uploads_dir: Path, run_id: str, uploads: Mapping[str, tuple[str, bytes]]) -> dict[str, str]:
    """Write a run's uploaded files; input name -> the path they are kept at (relative to the uploads folder)."""
    stored = {}
    for name, (filename, data) in uploads.items():
        relative = f"{run_id}/{safe_filename(name)}-{safe_filename(filename, 'upload')}"
        try:
            write_file(uploads_dir, relative, data)
        except OSError as exc:  # a full disk, a folder made read-only: the server's problem, not the caller's
            where = exc.filename or uploads_dir
            log.error("cannot store the upload of input %r under %s: %s", name, where, exc)
            raise Unavailable(f"The server cannot store uploads: {exc.strerror or exc} on {where}. Its operator "
                              "must make that folder writable (or free space); then send the run again.") from None
        stored[name] = relative
    return stored


def encode(values: Mapping[str, Any], stored_uploads: Mapping[str, str]) -> dict[str, Any]:
    """What the run record keeps as its inputs."""
    return {**values, **{name: {"upload": path} for name, path in stored_uploads.items()}}


def _is_upload(value: Any) -> bool:
    return isinstance(value, dict) and "upload" in value


def upload_paths(inputs: Mapping[str, Any], uploads_dir: Path) -> dict[str, Path]:
    """Input name -> where its stored file is."""
    return {name: uploads_dir / value["upload"] for name, value in inputs.items() if _is_upload(value)}


def request_for(run: Run, spec: AppSpec, uploads_dir: Path) -> RunRequest:
    """What a runner needs. Uploads go by the path they were stored at: they are read when the run starts."""
    inputs = run.inputs or {}
    uploads: dict[str, Upload] = {name: (path.name, path) for name, path in upload_paths(inputs, uploads_dir).items()}
    values = {name: value for name, value in inputs.items() if not _is_upload(value)}
    return RunRequest(run_id=run.id, workflow=spec.workflow, bindings=spec.inputs, values=values, uploads=uploads,
                      output_nodes=spec.output_nodes, timeout_s=spec.timeout_s, keep_metadata=spec.keep_metadata,
                      loaded=spec.loaded_workflow)


def rerun_inputs(run: Run, uploads_dir: Path) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
    """A run's inputs to submit again: uploads as submitted (their stored files), every other value as applied, so
    the seed drawn is used again. Reads the files: call it from a worker thread."""
    submitted = run.inputs or {}
    uploads = {name: (path.name, path.read_bytes()) for name, path in upload_paths(submitted, uploads_dir).items()}
    # "<node id>.<input>": a text the run made for the workflow itself (a dynamic prompt's choice), no input of the app
    values = {name: value for name, value in (run.applied or submitted).items() if name not in uploads
              and "." not in name}
    return values, uploads
