"""Storing files under the data dir when the disk refuses: real write failures, never a mocked filesystem."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from app.runs.deliveries import RunWebhooks
from app.runs.events import RunEvents
from app.runs.inflight import InFlightRuns
from app.runs.recorder import RunRecorder
from app.runs.storage import write_file
from app.runs.versions import Versions
from app.runs.webhooks import WebhookSender
from app.settings import Settings
from db.session import create_db_engine, make_session_factory
from runtimes.contract import RunOutcome, RunOutput
from tests.support.paths import REPO


def test_a_write_cut_short_by_the_file_size_limit_leaves_no_partial_file(tmp_path: Path) -> None:
    # RLIMIT_FSIZE makes the kernel refuse the write past 1 KiB (EFBIG), as a full disk refuses it (ENOSPC).
    script = textwrap.dedent(f"""
        import resource, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from app.runs.storage import write_file
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an OSError instead of the signal that kills the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))
        try:
            write_file(Path({str(tmp_path)!r}), "run1/00-out.png", b"x" * 100_000)
        except OSError as exc:
            print("refused", exc.errno)
        else:
            print("written")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith("refused"), done.stdout + done.stderr
    assert list((tmp_path / "run1").iterdir()) == []  # neither the file nor its .partial


def test_a_write_that_succeeds_leaves_only_the_file(tmp_path: Path) -> None:
    target = write_file(tmp_path, "run1/00-out.png", b"data")
    assert target.read_bytes() == b"data"
    assert [p.name for p in target.parent.iterdir()] == ["00-out.png"]


def _recorder(data_dir: Path) -> RunRecorder:
    settings = Settings(data_dir=data_dir, db_url=f"sqlite:///{data_dir / 'app.db'}")
    sessions = make_session_factory(create_db_engine(settings.db_url))
    webhooks = RunWebhooks(sender=WebhookSender(), sessions=sessions, secret_of=lambda slug: "secret")
    return RunRecorder(settings=settings, sessions=sessions, versions=Versions(), in_flight=InFlightRuns(),
                       events=RunEvents(), webhooks=webhooks)


def test_outputs_are_stored_all_or_none(tmp_path: Path) -> None:
    recorder = _recorder(tmp_path)
    # The second output's .partial path is taken by a folder: its write fails for real (IsADirectoryError).
    blocked = tmp_path / "outputs" / "run1" / "01-b.png.partial"
    blocked.mkdir(parents=True)
    outcome = RunOutcome(run_id="run1", applied={}, exec_ms=1.0, outputs=[
        RunOutput(node_id="9", filename=name, kind="image", mime="image/png", data=b"png")
        for name in ("a.png", "b.png")
    ])
    with pytest.raises(OSError):
        recorder._store_outputs("run1", outcome)
    assert [p.name for p in (tmp_path / "outputs" / "run1").iterdir()] == [blocked.name]  # the first one is gone
