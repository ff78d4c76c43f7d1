from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db import crud_runs
from db.crud_runs import NewArtifact, RunNotFoundError
from db.models import AppVersion, Run, utcnow
from tests.db.factories import new_run, publish


@pytest.fixture
def version(session: Session) -> AppVersion:
    return publish(session, slug="demo")


def _set_created_at(session: Session, run_id: str, when: datetime) -> None:
    session.execute(update(Run).where(Run.id == run_id).values(created_at=when))
    session.commit()
    session.expire_all()


def test_create_run_is_queued_and_stored(session_factory: sessionmaker[Session], version: AppVersion) -> None:
    before = utcnow()
    with session_factory() as session:
        run = new_run(session, version, inputs={"prompt": "a cat", "image": "uploads/x.png"}, webhook_url="https://h/k")
    with session_factory() as session:
        stored = crud_runs.get_run(session, run_id=run.id)
        missing = crud_runs.get_run(session, run_id="0" * 32)
    assert missing is None
    assert stored is not None
    assert (stored.status, stored.attempts, stored.app_id, stored.version_id) == (
        "queued",
        0,
        version.app_id,
        version.id,
    )
    assert stored.inputs == {"prompt": "a cat", "image": "uploads/x.png"}
    assert stored.webhook_url == "https://h/k"
    assert before <= stored.created_at <= utcnow()
    assert (stored.started_at, stored.finished_at, stored.applied, stored.error, stored.progress) == (
        None,
        None,
        None,
        None,
        None,
    )


def test_duplicate_idempotency_scope_is_refused_and_the_first_run_found(session: Session, version: AppVersion) -> None:
    scope = f"{version.app_id}:public:abc-123"
    first = new_run(session, version, idempotency_scope=scope)
    with pytest.raises(IntegrityError):
        new_run(session, version, idempotency_scope=scope)
    # The session was rolled back and is usable: the caller answers with the first run.
    found = crud_runs.find_run_by_scope(session, scope=scope)
    assert found is not None and found.id == first.id
    assert crud_runs.find_run_by_scope(session, scope=f"{version.app_id}:public:other") is None
    assert len(crud_runs.list_runs(session)) == 1


def test_runs_without_a_scope_do_not_collide(session: Session, version: AppVersion) -> None:
    new_run(session, version)
    new_run(session, version)
    assert len(crud_runs.list_runs(session)) == 2


def test_list_runs_newest_first_with_a_cursor(session: Session, version: AppVersion) -> None:
    start = utcnow()
    ids = []
    for i in range(5):
        run = new_run(session, version)
        _set_created_at(session, run.id, start + timedelta(seconds=i))
        ids.append(run.id)
    newest_first = ids[::-1]
    assert [r.id for r in crud_runs.list_runs(session)] == newest_first
    page1 = crud_runs.list_runs(session, limit=2)
    page2 = crud_runs.list_runs(session, limit=2, before=page1[-1].id)
    page3 = crud_runs.list_runs(session, limit=2, before=page2[-1].id)
    page4 = crud_runs.list_runs(session, limit=2, before=page3[-1].id)
    assert [[r.id for r in p] for p in (page1, page2, page3, page4)] == [
        newest_first[0:2],
        newest_first[2:4],
        newest_first[4:5],
        [],
    ]
    assert crud_runs.list_runs(session, before="f" * 32) == []


def test_cursor_pages_through_runs_created_at_the_same_instant(session: Session, version: AppVersion) -> None:
    same = utcnow()
    ids = set()
    for _ in range(5):
        run = new_run(session, version)
        _set_created_at(session, run.id, same)
        ids.add(run.id)
    seen: list[str] = []
    before = None
    while page := crud_runs.list_runs(session, limit=2, before=before):
        seen += [r.id for r in page]
        before = page[-1].id
    assert sorted(seen) == sorted(ids) and len(seen) == 5


def test_list_runs_filters_by_app_and_status(session: Session, version: AppVersion) -> None:
    other = publish(session, slug="other")
    mine = [new_run(session, version) for _ in range(3)]
    theirs = new_run(session, other)
    crud_runs.mark_running(session, status="running", run_id=mine[0].id, worker="w0", started_at=utcnow())

    assert {r.id for r in crud_runs.list_runs(session, app_id=version.app_id)} == {r.id for r in mine}
    assert [r.id for r in crud_runs.list_runs(session, app_id=other.app_id)] == [theirs.id]
    assert [r.id for r in crud_runs.list_runs(session, status="running")] == [mine[0].id]
    assert {r.id for r in crud_runs.list_runs(session, app_id=version.app_id, status="queued")} == {
        mine[1].id,
        mine[2].id,
    }
    assert len(crud_runs.list_runs(session, limit=3)) == 3


def test_count_runs_by_status(session: Session, version: AppVersion) -> None:
    runs = [new_run(session, version) for _ in range(3)]
    crud_runs.mark_running(session, status="running", run_id=runs[0].id, worker="w0", started_at=utcnow())
    assert crud_runs.count_runs(session, status="queued") == 2
    assert crud_runs.count_runs(session, status="running") == 1
    assert crud_runs.count_runs(session, status="failed") == 0


def test_queued_runs_come_back_in_fifo_order(session: Session, version: AppVersion) -> None:
    start = utcnow()
    runs = [new_run(session, version) for _ in range(4)]
    # Created out of id order on purpose: FIFO is by created_at, not by the random id.
    for offset, run in zip((3, 0, 2, 1), runs, strict=True):
        _set_created_at(session, run.id, start + timedelta(milliseconds=offset))
    crud_runs.mark_running(session, status="running", run_id=runs[2].id, worker="w0", started_at=utcnow())
    expected = [runs[1].id, runs[3].id, runs[0].id]
    assert [r.id for r in crud_runs.runs_with_status(session, status="queued")] == expected
    assert [r.id for r in crud_runs.runs_with_status(session, status="running")] == [runs[2].id]


def test_mark_running_counts_attempts_and_queue_time(
    session_factory: sessionmaker[Session], version: AppVersion
) -> None:
    with session_factory() as session:
        run = new_run(session, version)
        started = run.created_at + timedelta(milliseconds=1500)
        crud_runs.mark_running(session, status="running", run_id=run.id, worker="engine-0", started_at=started)
    with session_factory() as session:
        stored = crud_runs.get_run(session, run_id=run.id)
    assert stored is not None
    assert (stored.status, stored.worker, stored.started_at, stored.attempts) == ("running", "engine-0", started, 1)
    assert stored.queue_ms == pytest.approx(1500.0)


def test_requeue_keeps_attempts_and_the_next_start_counts_again(session: Session, version: AppVersion) -> None:
    run = new_run(session, version)
    crud_runs.mark_running(session, status="running", run_id=run.id, worker="engine-0", started_at=utcnow())
    crud_runs.requeue_run(session, status="queued", run_id=run.id)

    stored = crud_runs.get_run(session, run_id=run.id)
    assert stored is not None
    assert (stored.status, stored.attempts, stored.worker, stored.started_at, stored.progress) == (
        "queued", 1, None, None, None)
    assert [r.id for r in crud_runs.runs_with_status(session, status="queued")] == [run.id]

    crud_runs.mark_running(session, status="running", run_id=run.id, worker="engine-1", started_at=utcnow())
    # The copy this session holds is refreshed by the update.
    assert (stored.status, stored.attempts, stored.worker) == ("running", 2, "engine-1")


def test_the_end_keeps_the_last_progress_reported(session: Session, version: AppVersion) -> None:
    run = new_run(session, version)
    crud_runs.mark_running(session, status="running", run_id=run.id, worker="w", started_at=utcnow())
    crud_runs.end_run(session, run_id=run.id, status="succeeded", finished_at=utcnow(),
                      progress={"node": "3", "value": 20, "max": 20})
    stored = crud_runs.get_run(session, run_id=run.id)
    assert stored is not None and stored.progress == {"node": "3", "value": 20, "max": 20}


def test_finish_run_records_the_outcome_and_total_time(
    session_factory: sessionmaker[Session], version: AppVersion
) -> None:
    with session_factory() as session:
        run = new_run(session, version)
        crud_runs.mark_running(session, status="running", run_id=run.id, worker="w",
                               started_at=run.created_at + timedelta(seconds=1))
        finished = run.created_at + timedelta(seconds=3, milliseconds=250)
        returned = crud_runs.finish_run(
            session,
            run_id=run.id,
            status="succeeded",
            finished_at=finished,
            applied={"prompt": "a cat", "seed": 42},
            exec_ms=2200.0,
        )
        assert returned.status == "succeeded"
    with session_factory() as session:
        stored = crud_runs.get_run(session, run_id=run.id)
    assert stored is not None
    assert (stored.status, stored.finished_at, stored.applied, stored.exec_ms, stored.error) == (
        "succeeded",
        finished,
        {"prompt": "a cat", "seed": 42},
        2200.0,
        None,
    )
    assert stored.total_ms == pytest.approx(3250.0)
    assert stored.queue_ms == pytest.approx(1000.0)


def test_finish_run_never_overwrites_a_final_status(session: Session, version: AppVersion) -> None:
    run = new_run(session, version)
    crud_runs.mark_running(session, status="running", run_id=run.id, worker="w", started_at=utcnow())
    cancelled_at = utcnow()
    crud_runs.finish_run(session, run_id=run.id, status="cancelled", finished_at=cancelled_at)
    # The worker reports late: the cancellation stands.
    late = crud_runs.finish_run(
        session,
        run_id=run.id,
        status="failed",
        finished_at=cancelled_at + timedelta(seconds=5),
        error={"type": "execution_error", "message": "boom"},
    )
    assert (late.status, late.finished_at, late.error) == ("cancelled", cancelled_at, None)
    # Later state changes are ignored too.
    crud_runs.mark_running(session, status="running", run_id=run.id, worker="w2", started_at=utcnow())
    crud_runs.requeue_run(session, status="queued", run_id=run.id)
    assert (late.status, late.attempts, late.worker, late.progress) == ("cancelled", 1, "w", None)
    session.expire_all()
    stored = crud_runs.get_run(session, run_id=run.id)
    assert stored is not None and (stored.status, stored.attempts, stored.worker) == ("cancelled", 1, "w")


def test_finish_a_queued_run_and_store_the_error(session: Session, version: AppVersion) -> None:
    run = new_run(session, version)
    error = {
        "type": "prompt_outputs_failed_validation",
        "message": "Value not in list",
        "node_id": "4",
        "node_type": "CheckpointLoaderSimple",
        "input": "ckpt_name",
        "details": "x.safetensors",
    }
    finished = crud_runs.finish_run(session, run_id=run.id, status="failed", finished_at=utcnow(), error=error)
    assert (finished.status, finished.error, finished.started_at, finished.exec_ms) == ("failed", error, None, None)
    assert finished.total_ms is not None and finished.total_ms >= 0


def test_state_changes_of_an_unknown_run_raise(session: Session) -> None:
    missing = uuid.uuid4().hex
    with pytest.raises(RunNotFoundError):
        crud_runs.mark_running(session, status="running", run_id=missing, worker="w", started_at=utcnow())
    with pytest.raises(RunNotFoundError):
        crud_runs.finish_run(session, run_id=missing, status="failed", finished_at=utcnow())
    with pytest.raises(RunNotFoundError):
        crud_runs.requeue_run(session, status="queued", run_id=missing)


def test_artifacts_are_written_with_the_end_and_listed_in_order(session_factory: sessionmaker[Session],
                                                                 version: AppVersion) -> None:
    with session_factory() as session:
        run = new_run(session, version)
        other = new_run(session, version)
        ended = crud_runs.end_run(session, run_id=run.id, status="succeeded", finished_at=utcnow(), artifacts=[
            NewArtifact(node_id="9", kind="image", filename="out_00001_.png", path=f"outputs/{run.id}/out_00001_.png",
                        mime="image/png", size=123_456),
            NewArtifact(node_id="12", kind="video", filename="clip.mp4", path=f"outputs/{run.id}/clip.mp4",
                        mime="video/mp4", size=3 * 2**30),  # past 32-bit integers
        ])
        assert ended is not None and ended.status == "succeeded"
        crud_runs.end_run(session, run_id=other.id, status="succeeded", finished_at=utcnow(), artifacts=[
            NewArtifact(node_id="9", kind="file", filename="a.txt", path="p", mime="text/plain", size=1)])
        # A run that has ended already: its end stands, and the files of a second end are not added.
        late = crud_runs.end_run(session, run_id=run.id, status="failed", finished_at=utcnow(), artifacts=[
            NewArtifact(node_id="9", kind="image", filename="late.png", path="late", mime="image/png", size=1)])
        assert late is None
    with session_factory() as session:
        stored = crud_runs.artifacts_of(session, run_id=run.id)
        none = crud_runs.artifacts_of(session, run_id=uuid.uuid4().hex)
        assert crud_runs.get_run(session, run_id=run.id).status == "succeeded"
    assert none == []
    assert [(a.node_id, a.kind, a.path, a.mime, a.size) for a in stored] == [
        ("9", "image", f"outputs/{run.id}/out_00001_.png", "image/png", 123_456),
        ("12", "video", f"outputs/{run.id}/clip.mp4", "video/mp4", 3 * 2**30),
    ]
    assert stored[0].id < stored[1].id
    assert stored[0].created_at.tzinfo is not None


def test_artifacts_of_an_unknown_run_are_refused(session: Session) -> None:
    with pytest.raises(RunNotFoundError):
        crud_runs.end_run(session, run_id="0" * 32, status="succeeded", finished_at=utcnow(), artifacts=[
            NewArtifact(node_id="9", kind="image", filename="x.png", path="p", mime="image/png", size=1)])
    assert crud_runs.artifacts_of(session, run_id="0" * 32) == []


def test_concurrent_writers_from_threads(session_factory: sessionmaker[Session], version: AppVersion) -> None:
    # The app calls these from asyncio.to_thread: many sessions write at once (SQLite: busy_timeout, no "locked").
    def lifecycle(worker: int) -> list[str]:
        ids = []
        with session_factory() as session:
            for _ in range(10):
                run = new_run(session, version)
                crud_runs.mark_running(session, status="running", run_id=run.id, worker=f"w{worker}",
                                       started_at=utcnow())
                for _ in range(3):
                    crud_runs.list_runs(session, limit=5)
                crud_runs.finish_run(session, run_id=run.id, status="succeeded", finished_at=utcnow(), exec_ms=1.0)
                ids.append(run.id)
        return ids

    with ThreadPoolExecutor(max_workers=8) as pool:
        done = [run_id for ids in pool.map(lifecycle, range(8)) for run_id in ids]
    with session_factory() as session:
        assert crud_runs.count_runs(session, status="succeeded") == len(done) == 80
        assert {r.attempts for r in crud_runs.runs_with_status(session, status="succeeded")} == {1}


def test_run_and_access_reads_the_run_with_its_apps_visibility(session: Session, version: AppVersion) -> None:
    public = publish(session, slug="open", public=True)
    private_run, public_run = new_run(session, version), new_run(session, public)
    crud_runs.mark_running(session, status="running", run_id=public_run.id, worker="w", started_at=utcnow())

    private_row = crud_runs.run_and_access(session, run_id=private_run.id)
    public_row = crud_runs.run_and_access(session, run_id=public_run.id)
    assert private_row is not None and (private_row.status, private_row.app_public) == ("queued", False)
    assert public_row is not None and (public_row.status, public_row.attempts, public_row.worker,
                                       public_row.app_public) == ("running", 1, "w", True)
    assert public_row.inputs == {"prompt": "a cat"}
    assert crud_runs.run_and_access(session, run_id="0" * 32) is None


def test_artifacts_of_several_runs_in_one_read(session: Session, version: AppVersion) -> None:
    runs = [new_run(session, version) for _ in range(3)]
    for run, count in zip(runs, (2, 0, 1), strict=True):
        files = [NewArtifact(node_id="9", kind="image", filename=f"{i:02d}.png", path=f"outputs/{run.id}/{i:02d}.png",
                             mime="image/png", size=10 + i) for i in range(count)]
        crud_runs.end_run(session, run_id=run.id, status="succeeded", finished_at=utcnow(), artifacts=files)

    found = crud_runs.artifacts_by_run(session, run_ids=[r.id for r in runs])

    assert set(found) == {runs[0].id, runs[2].id}  # the run without files is left out
    assert [a.filename for a in found[runs[0].id]] == ["00.png", "01.png"]
    assert [(a.filename, a.size) for a in found[runs[2].id]] == [("00.png", 10)]
    assert found[runs[0].id] == list(crud_runs.artifacts_of(session, run_id=runs[0].id))
    assert crud_runs.artifacts_by_run(session, run_ids=[]) == {}
