"""A run is run again with its values as applied (the drawn seed, the text a dynamic prompt made), but not with the
texts the run made for the workflow itself: those are no inputs of the app; its uploads as kept, once per content."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.assets.store import blake3_of
from app.errors import NotFound
from app.runs.stored import encode, rerun_inputs, store_uploads
from db.models import Run


def test_a_rerun_sends_the_applied_values_of_the_apps_inputs_only(tmp_path: Path) -> None:
    run = Run(id="r1", inputs={"prompt": "a {red|blue} fox", "seed": None},
              applied={"prompt": "a red fox", "seed": 42, "7.text": "stormy sea"})

    values, uploads = rerun_inputs(run, tmp_path)

    assert values == {"prompt": "a red fox", "seed": 42} and uploads == {}


def test_uploads_are_kept_once_per_content_and_read_back_for_a_rerun(tmp_path: Path) -> None:
    uploads_dir = tmp_path / "uploads"  # as Settings.uploads_dir: the blobs live beside it, in the data dir
    first = store_uploads(uploads_dir, "r1", {"photo": ("cat.png", b"same bytes")})
    second = store_uploads(uploads_dir, "r2", {"photo": ("other name.png", b"same bytes")})
    assert first["photo"]["blob"] == second["photo"]["blob"] == blake3_of(b"same bytes")
    assert [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()] == [b"same bytes"]  # one file on disk
    run = Run(id="r2", inputs=encode({"seed": 3}, second), applied=None)

    values, uploads = rerun_inputs(run, uploads_dir)

    assert values == {"seed": 3} and uploads == {"photo": ("photo-other_name.png", b"same bytes")}


def test_uploads_kept_before_blobs_are_still_read(tmp_path: Path) -> None:
    (tmp_path / "uploads" / "r0").mkdir(parents=True)
    (tmp_path / "uploads" / "r0" / "photo-cat.png").write_bytes(b"old")
    run = Run(id="r0", inputs={"photo": {"upload": "r0/photo-cat.png"}}, applied=None)

    assert rerun_inputs(run, tmp_path / "uploads")[1] == {"photo": ("photo-cat.png", b"old")}


def test_a_run_whose_inputs_retention_removed_cannot_be_rerun(tmp_path: Path) -> None:
    kept = store_uploads(tmp_path / "uploads", "r3", {"photo": ("cat.png", b"x")})
    run = Run(id="r3", inputs=encode({}, kept), files_removed={"inputs": "2026-01-02T03:04:05+00:00"})

    with pytest.raises(NotFound, match=r"removed by retention .* on 2026-01-02"):
        rerun_inputs(run, tmp_path / "uploads")
