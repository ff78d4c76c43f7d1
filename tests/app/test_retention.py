"""Retention (--keep-outputs / --keep-inputs DAYS) on the real app: runs made old in its database lose their output
files and uploaded inputs at the next start's sweep, and their records say so; a blob a newer run, a queued run or a
live asset still uses stays; expired assets go. One line per sweep in the log, with counts."""

from __future__ import annotations

import io
import os
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy.orm import Session

from app.assets.store import AssetStore, blake3_of, blob_path
from app.runs.retention import Retention
from app.settings import Settings
from db.models import Asset, Run, utcnow
from db.session import create_db_engine, make_session_factory
from launch import parse_args
from tests.support.photo_app import publish_photo_app, run_photo
from tests.support.server import AppServer

DAYS = 1


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine_url: str) -> Iterator[AppServer]:
    app = AppServer(tmp_path_factory.mktemp("retention"), comfyui_url=engine_url,
                    extra=("--keep-outputs", str(DAYS), "--keep-inputs", str(DAYS))).start()
    yield app
    app.stop()


def png(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(out, format="PNG")
    return out.getvalue()


def in_db(server: AppServer, work: Any) -> Any:
    engine = create_db_engine(f"sqlite:///{server.data_dir / 'publisher.db'}")
    try:
        with make_session_factory(engine)() as session:
            result = work(session)
            session.commit()
            return result
    finally:
        engine.dispose()


def blob(server: AppServer, data: bytes) -> Path:
    return server.data_dir / blob_path(blake3_of(data))


def age(server: AppServer, run_ids: list[str], days: float) -> None:
    """Make runs `days` old, and the blobs they hold older than the sweeper's grace for just-stored blobs."""
    def older(session: Session) -> None:
        for run_id in run_ids:
            session.get(Run, run_id).created_at = utcnow() - timedelta(days=days)
    in_db(server, older)
    hour_ago = time.time() - 3600
    for path in (server.data_dir / "assets").rglob("*"):
        os.utime(path, (hour_ago, hour_ago))


@pytest.fixture(scope="module")
def photo_app(http: httpx.Client, admin: dict[str, str]) -> str:
    return publish_photo_app(http, admin, "Kept photo")


def upload(http: httpx.Client, headers: dict[str, str], data: bytes, expires_in: int) -> str:
    response = http.post("/api/v2/assets", headers=headers, files={"file": ("a.png", data, "image/png")},
                         data={"content_type": "image/png", "file_path": "a.png", "expires_in": str(expires_in)})
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


def wait_for_log(server: AppServer, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in (tail := server.log_tail(20_000)):
            return tail
        time.sleep(0.1)
    raise TimeoutError(f"no {text!r} in the log:\n{server.log_tail()}")


def test_old_runs_lose_their_files_at_the_sweep_and_say_so(server: AppServer, http: httpx.Client,
                                                          photo_app: str, runner: dict[str, str]) -> None:
    shared, kept_by_asset, expiring = png((1, 1, 1)), png((2, 2, 2)), png((3, 3, 3))
    old = run_photo(http, photo_app, runner, shared)
    newer = run_photo(http, photo_app, runner, shared)
    old_too = run_photo(http, photo_app, runner, kept_by_asset)
    upload(http, runner, kept_by_asset, expires_in=7 * 86400)
    gone_asset = upload(http, runner, expiring, expires_in=60)
    output_of = {run["id"]: server.data_dir / run["outputs"][0]["url"].removeprefix("/files/")
                 for run in (old, newer, old_too)}
    assert all(path.is_file() for path in output_of.values())

    server.stop()
    age(server, [old["id"], old_too["id"]], days=DAYS + 2)

    def expire(session: Session) -> None:
        session.get(Asset, gone_asset).expires_at = utcnow() - timedelta(minutes=1)
    in_db(server, expire)
    server.start()
    log = wait_for_log(server, "retention sweep: removed 2 output files")
    assert "retention sweep: removed 2 output files of 2 runs, 0 uploaded input files of 2 runs, 1 expired assets" \
        in log

    for run in (old, old_too):
        view = http.get(f"/api/runs/{run['id']}", headers=runner).json()
        assert set(view["files_removed"]) == {"outputs", "inputs"}
        assert [(o["removed"], o["url"], o["filename"]) for o in view["outputs"]] == \
            [(True, None, run["outputs"][0]["filename"])]
        assert not output_of[run["id"]].exists()
    view = http.get(f"/api/runs/{newer['id']}", headers=runner).json()
    assert view["files_removed"] is None and view["outputs"][0]["removed"] is False
    # The Comfy API v2 says so in its own words: past its retention a job is `expired`, its outputs gone.
    jobs = {run["id"]: http.get(f"/apps/{photo_app}/api/v2/jobs/{run['id']}", headers=runner).json()
            for run in (old, newer)}
    assert (jobs[old["id"]]["status"], jobs[old["id"]]["outputs"]) == ("expired", [])
    assert jobs[newer["id"]]["status"] == "succeeded" and len(jobs[newer["id"]]["outputs"]) == 1
    assert http.get(view["outputs"][0]["url"]).status_code == 200
    assert blob(server, shared).is_file()  # the newer run still uses it
    assert blob(server, kept_by_asset).is_file()  # a live asset still uses it
    assert not blob(server, expiring).exists()
    assert http.get(f"/api/v2/assets/{gone_asset}", headers=runner).status_code == 404


def test_a_blob_goes_with_the_last_run_that_holds_it_never_under_a_queued_run(server: AppServer,
                                                                               http: httpx.Client,
                                                                               photo_app: str,
                                                                               runner: dict[str, str]) -> None:
    data = png((7, 7, 7))
    done = run_photo(http, photo_app, runner, data)
    waiting_id = uuid.uuid4().hex

    def queue_one(session: Session) -> None:  # a run still queued that holds the same blob
        source = session.get(Run, done["id"])
        session.add(Run(id=waiting_id, status="queued", app_id=source.app_id, version_id=source.version_id,
                        inputs=dict(source.inputs), created_at=utcnow()))
    in_db(server, queue_one)
    server.stop()
    age(server, [done["id"], waiting_id], days=DAYS + 2)
    engine = create_db_engine(f"sqlite:///{server.data_dir / 'publisher.db'}")
    settings = Settings(data_dir=server.data_dir, db_url="", keep_outputs_days=DAYS, keep_inputs_days=DAYS)
    retention = Retention(settings=settings, sessions=make_session_factory(engine), assets=AssetStore(server.data_dir))
    try:
        counts = retention.sweep()
        assert (counts.output_runs, counts.input_runs, counts.input_files) == (1, 1, 0)
        assert blob(server, data).is_file()  # the queued run needs it
        assert retention.sweep().any() is False  # nothing left to do: nothing done again

        def end_it(session: Session) -> None:
            run = session.get(Run, waiting_id)
            run.status, run.finished_at = "cancelled", utcnow()
        in_db(server, end_it)
        counts = retention.sweep()
        assert (counts.input_runs, counts.input_files) == (1, 1) and not blob(server, data).exists()
    finally:
        engine.dispose()
        server.start()


def test_the_retention_flags_take_days_above_zero(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse_args(["--keep-outputs", "30", "--keep-inputs", "0.5"])
    assert (args.keep_outputs, args.keep_inputs) == (30.0, 0.5)
    assert parse_args([]).keep_outputs is None
    for bad in ("0", "-1", "soon"):
        with pytest.raises(SystemExit):
            parse_args(["--keep-outputs", bad])
        assert "expected a number of days above 0" in capsys.readouterr().err
