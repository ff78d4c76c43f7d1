"""The studio's load test reports: ids, the list, loading (missing, corrupt, paths that would leave the folder), and
how the Load tests tab shows one report or two side by side."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from app.errors import Unavailable
from app.loadtest.reports import ReportNotFound, ReportStore, ReportUnreadable
from app.loadtest.studio_runs import KEY_NAME, own_address, revoke_leftover_keys
from app.settings import Settings
from app.studio import loadtest_view as view
from db import crud_keys
from db.migrate import upgrade_to_head
from db.session import create_db_engine, make_session_factory, sqlite_url


def report(slug: str = "demo", *, requests: int = 10, failures: dict[str, int] | None = None, p50: float = 1.0,
           users: int = 2) -> dict[str, Any]:
    """A report.json as the runner writes it (app/loadtest/report.py)."""
    failures = failures or {}
    stats = {"p50": p50, "p95": p50 * 2, "p99": p50 * 3, "mean": p50 * 1.2, "max": p50 * 4}
    return {"id": "x", "slug": slug, "version": 1, "target": "local", "url": "http://127.0.0.1:1",
            "started_at": "2026-11-30T19:00:00+00:00", "finished_at": "2026-11-30T19:00:05+00:00",
            "options": {"slug": slug, "users": users, "spawn_rate": 1.0, "duration_s": 5.0, "think_min_s": 1.0,
                        "think_max_s": 2.0, "target": "local", "max_runs": None},
            "requests": requests, "successes": requests - sum(failures.values()), "failures": failures,
            "total_s": stats, "queue_wait_s": {k: v / 10 for k, v in stats.items()},
            "execution_s": {k: None for k in stats}, "runs_per_min": 60.0 * requests / 5,
            "series": {"t_s": [1, 2], "users": [1, 2], "p50_s": [1, 1], "p95_s": [2, 2], "rps": [1, 1],
                       "queue_length": [0, 1]},
            "plots": ["latency.png"], "locustfile": "locustfile.py", "summary": "summary.md"}


def write(store: ReportStore, data: dict[str, Any], *, files: tuple[str, ...] = ("latency.png",)) -> str:
    report_id, folder = store.allocate()
    (folder / "report.json").write_text(json.dumps(data))
    for name in files:
        (folder / name).write_bytes(b"\x89PNG\r\n\x1a\n")
    (folder / "locustfile.py").write_text("from locust import HttpUser\n")
    (folder / "summary.md").write_text(f"# Load test of {data.get('slug')}\n")
    return report_id


def test_ids_are_allocated_in_order_and_never_shared(tmp_path: Path) -> None:
    store = ReportStore(tmp_path / "loadtests")
    first, folder = store.allocate()
    second, _ = store.allocate()
    assert folder.is_dir() and folder.parent == tmp_path / "loadtests"
    assert int(second) == int(first) + 1 and len(first) == 4
    (tmp_path / "loadtests" / f"{int(second) + 1:04d}").write_text("")  # a name taken meanwhile (here by a file)
    third, folder = store.allocate()
    assert int(third) == int(second) + 2 and folder.is_dir()


def test_the_list_is_newest_first_and_says_why_a_report_does_not_read(tmp_path: Path) -> None:
    store = ReportStore(tmp_path)
    old = write(store, report("old"))
    stopped, _ = store.allocate()  # a test stopped before its report
    corrupt = write(store, report())
    (tmp_path / corrupt / "report.json").write_text("{not json")
    new = write(store, report("new"))
    (tmp_path / "notes").mkdir()  # not an id: not listed
    listed = store.list()
    assert [e.id for e in listed] == [new, corrupt, stopped, old]
    assert listed[0].report is not None and listed[0].report.data["slug"] == "new"
    assert listed[1].report is None and "cannot be read" in (listed[1].problem or "")
    assert listed[2].report is None and "no report" in (listed[2].problem or "")
    rows = view.listing_rows(listed)
    assert [r[0] for r in rows] == [new, corrupt, stopped, old] and rows[0][1] == "new" and rows[2][-1]
    assert [view.choice(e)[1] for e in listed] == [new, corrupt, stopped, old]


@pytest.mark.parametrize("bad_id", ["../x", "..", "0001/../../etc", "/etc", "1", "", "00a1"])
def test_an_id_that_is_not_one_never_leaves_the_folder(tmp_path: Path, bad_id: str) -> None:
    store = ReportStore(tmp_path / "loadtests")
    (tmp_path / "report.json").write_text(json.dumps(report()))  # a report just outside the folder
    with pytest.raises(ReportNotFound, match="not a load test id"):
        store.load(bad_id)


def test_missing_and_unreadable_reports_say_what_to_do(tmp_path: Path) -> None:
    store = ReportStore(tmp_path)
    with pytest.raises(ReportNotFound, match=r"No load test 0042 .*choose one from the list"):
        store.load("0042")
    report_id, folder = store.allocate()
    with pytest.raises(ReportNotFound, match="stopped or failed before"):
        store.load(report_id)
    (folder / "report.json").write_text("[1, 2]")
    with pytest.raises(ReportUnreadable, match="not a JSON object"):
        store.load(report_id)
    broken = report()
    del broken["total_s"]
    broken["requests"] = "many"
    (folder / "report.json").write_text(json.dumps(broken))
    with pytest.raises(ReportUnreadable, match="requests, total_s"):
        store.load(report_id)


def test_a_reports_files_stay_in_its_folder(tmp_path: Path) -> None:
    store = ReportStore(tmp_path / "loadtests")
    (tmp_path / "secret.png").write_bytes(b"\x89PNG")
    data = report()
    data["plots"] = ["latency.png", "../../secret.png", str(tmp_path / "secret.png"), "escape.png", "notes.txt",
                     "missing.png"]
    data["locustfile"] = "../../secret.png"
    report_id = write(store, data, files=("latency.png", "notes.txt"))
    folder = tmp_path / "loadtests" / report_id
    os.symlink(tmp_path / "secret.png", folder / "escape.png")
    loaded = store.load(report_id)
    assert loaded.plots == [folder / "latency.png"]
    assert loaded.locustfile is None
    assert loaded.report_json == folder / "report.json" and loaded.summary.startswith("# Load test of demo")


def test_a_stopped_tests_folder_can_be_discarded(tmp_path: Path) -> None:
    store = ReportStore(tmp_path)
    report_id, folder = store.allocate()
    (folder / "locustfile.py").write_text("")
    store.discard(report_id)
    assert not folder.exists() and store.list() == []
    with pytest.raises(ReportNotFound):
        store.discard("../..")
    assert tmp_path.exists()


def test_the_numbers_table_has_each_time_and_the_failures_by_kind() -> None:
    text = view.numbers_markdown(report(requests=12, failures={"http 500": 2, "run failed": 1, "timeout": 0}))
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert set(rows) >= {"Total", "Queue wait", "Execution"}
    assert "| 1.00 | 2.00 | 3.00 | 1.20 | 4.00 |" in rows["Total"]
    assert rows["Execution"].count("—") == 5  # nothing measured: shown as such, not as 0
    assert "**12 requests**, 9 succeeded" in text
    assert "failures: http 500 × 2, run failed × 1" in text and "timeout" not in text
    assert "failures: none" in view.numbers_markdown(report())


def test_two_reports_side_by_side_show_how_the_second_differs() -> None:
    text = view.comparison_markdown("0001", report("a", p50=1.0, users=2), "0002",
                                    report("b", p50=1.5, users=4, failures={"http 429": 3}))
    lines = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:5]] for line in text.splitlines()[2:]}
    assert text.splitlines()[0].startswith("| | 0001 (a) | 0002 (b) | 0002 vs 0001 |")
    assert lines["Users"][:2] == ["2", "4"]
    assert lines["Total p50 s"] == ["1.00", "1.50", "+50%"]
    assert lines["Queue wait p95 s"] == ["0.20", "0.30", "+50%"]
    assert lines["Failures"][:2] == ["0", "3"] and lines["Successes"] == ["10", "7", "-30%"]
    assert lines["Execution p50 s"] == ["—", "—", ""]


def test_the_progress_line_reads_what_the_runner_reports() -> None:
    line = view.progress_line({"elapsed_s": 12.4, "users": 2, "requests": 8, "failures": 1, "p50_s": 1.234})
    assert line.strip() == "12 s · 2 users · 8 requests · 1 failures · p50 1.23 s"
    assert "p50 — s" in view.progress_line({"elapsed_s": 0, "users": 0, "requests": 0, "failures": 0,
                                             "p50_s": None})


def test_an_options_error_names_the_tabs_field_not_the_flag() -> None:
    from app.loadtest.options import LoadTestOptions

    with pytest.raises(ValueError) as refused:
        LoadTestOptions(slug="demo", users=1, spawn_rate=1, duration_s=5, think_min_s=3, think_max_s=1)
    message = view.in_fields(str(refused.value))
    assert "Think min/max" in message and "--" not in message


def test_one_reports_plots_fill_rows_of_two_and_two_reports_pair_the_same_plot() -> None:
    a = [Path("r/latency.png"), Path("r/throughput.png"), Path("r/total_time.png")]
    rows = view.plot_pairs("0001", a)
    assert [[c and c[1] for c in row] for row in rows] == [["0001 · latency", "0001 · throughput"],
                                                            ["0001 · total time", None]]
    b = [Path("s/latency.png"), Path("s/queue.png")]
    rows = view.plot_pairs("0001", a, "0002", b)
    assert [(left and left[0], right and right[0]) for left, right in rows] == [
        (a[0], b[0]), (a[1], None), (a[2], None), (None, b[1])]


def test_the_summarys_links_to_the_reports_own_files_become_plain_names() -> None:
    text = view.summary_markdown("Plots: [latency.png](latency.png), [docs](https://locust.io/x)\n[a](../b)")
    assert text == "Plots: latency.png, [docs](https://locust.io/x)\na"


def test_a_key_left_live_by_a_studio_load_test_that_died_with_its_server_is_revoked(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    upgrade_to_head(url)
    with make_session_factory(create_db_engine(url))() as session:
        _, left = crud_keys.create_api_key(session, name=KEY_NAME.format(id="0007"), admin=False)
        _, users = crud_keys.create_api_key(session, name="studio load test of mine", admin=False)
        _, ended = crud_keys.create_api_key(session, name=KEY_NAME.format(id="0006"), admin=False)
        crud_keys.revoke_api_key(session, prefix=ended[:crud_keys.PREFIX_LENGTH])
        assert len(revoke_leftover_keys(session)) == 1
        assert crud_keys.verify_api_key(session, token=left) is None
        assert crud_keys.verify_api_key(session, token=users) is not None  # a key someone named: not ours


def test_the_studio_tests_the_server_at_the_address_it_serves_on(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, db_url=sqlite_url(tmp_path), self_url="http://127.0.0.1:7860")
    assert own_address(settings) == "http://127.0.0.1:7860"
    with pytest.raises(Unavailable, match=r"launch\.py loadtest"):
        own_address(Settings(data_dir=tmp_path, db_url=sqlite_url(tmp_path)))
