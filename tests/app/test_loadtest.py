"""Load tests (app/loadtest/): one short Locust run of the model-free demo against the real app and engine, shared by
the module; its report checked against the server's own run records; the locustfile run by hand; clear refusals."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from app.loadtest.errors import LoadTestError
from app.loadtest.options import MAX_USERS, LoadTestOptions
from app.loadtest.runner import run_load_test
from runtimes.engine.manager import EngineSettings
from runtimes.engine.process import free_port
from tests.support.deployments import record_live_deployment
from tests.support.paths import REPO
from tests.support.prompts import demo_invert, load_invert, shipped
from tests.support.server import AppServer

REPORT_KEYS = {"id", "slug", "version", "target", "url", "started_at", "finished_at", "options", "requests",
               "successes", "failures", "total_s", "queue_wait_s", "execution_s", "runs_per_min", "series", "plots",
               "locustfile", "summary"}
SERIES_KEYS = {"t_s", "users", "p50_s", "p95_s", "rps", "queue_length"}
DURATION_S = 6


@pytest.fixture(scope="module")
def server(shared_app: AppServer) -> AppServer:
    return shared_app


def publish_demo(http: httpx.Client, admin: dict[str, str], size: int | None = None) -> str:
    """The shipped model-free demo, its colour an input (private: running it needs a key); `size`: its image's
    side, for runs that take long enough to queue behind each other."""
    workflow = shipped("demo_invert.json") if size is None else demo_invert(0xFF8000, size=size)
    response = http.post("/api/apps", headers=admin, json={
        "name": "Demo", "slug": f"demo-{uuid.uuid4().hex[:6]}", "workflow": workflow,
        "inputs": [{"node": "1", "input": "color", "name": "color"}]})
    assert response.status_code == 201, response.text
    return str(response.json()["slug"])


@pytest.fixture(scope="module")
def demo(http: httpx.Client, admin: dict[str, str]) -> str:
    return publish_demo(http, admin)


class Loaded:
    def __init__(self, report: dict[str, Any], out: Path, progress: list[dict[str, Any]]) -> None:
        self.report, self.out, self.progress = report, out, progress


@pytest.fixture(scope="module")
def loaded(server: AppServer, runner: dict[str, str], demo: str, tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    """The module's one load test: 2 users for a few seconds, short think times."""
    out = tmp_path_factory.mktemp("loadtest")
    progress: list[dict[str, Any]] = []
    options = LoadTestOptions(slug=demo, users=2, spawn_rate=2, duration_s=DURATION_S, think_min_s=0.1,
                              think_max_s=0.3)
    report = asyncio.run(run_load_test(options, base_url=server.url, api_key=key_of(runner), out_dir=out,
                                       on_progress=progress.append))
    return Loaded(report, out, progress)


def key_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def server_runs(http: httpx.Client, admin: dict[str, str], slug: str) -> list[dict[str, Any]]:
    runs, before = [], None
    while True:
        page = http.get("/api/runs", headers=admin, params={"app": slug, "limit": 200,
                                                            **({"before": before} if before else {})}).json()
        runs += page["runs"]
        if not (before := page["next_before"]):
            return runs


def test_the_report_counts_what_the_server_recorded(loaded: Loaded, http: httpx.Client, admin: dict[str, str],
                                                    demo: str) -> None:
    report = loaded.report
    assert set(report) == REPORT_KEYS
    assert json.loads((loaded.out / "report.json").read_text()) == report
    assert report["slug"] == demo and report["version"] == 1 and report["target"] == "local"
    assert report["requests"] == report["successes"] + sum(report["failures"].values())
    assert report["requests"] >= 4 and report["failures"] == {}  # the demo runs in milliseconds: nothing fails
    runs = server_runs(http, admin, demo)
    assert len(runs) == report["requests"]
    assert {run["status"] for run in runs} == {"succeeded"}
    (locust_runs,) = [e for e in json.loads((loaded.out / "locust_stats.json").read_text()) if e["method"] == "RUN"]
    assert locust_runs["num_requests"] == report["requests"]  # Locust's own final count agrees
    assert report["options"] == {"slug": demo, "users": 2, "spawn_rate": 2, "duration_s": DURATION_S,
                                 "think_min_s": 0.1, "think_max_s": 0.3, "target": "local", "max_runs": None}
    assert report["runs_per_min"] > 0


def test_queue_wait_and_execution_come_from_the_run_records(loaded: Loaded, http: httpx.Client,
                                                             admin: dict[str, str], demo: str) -> None:
    runs = server_runs(http, admin, demo)
    for key, field in (("queue_wait_s", "queue_ms"), ("execution_s", "exec_ms")):
        recorded = [run["timings"][field] / 1000 for run in runs]
        assert loaded.report[key]["max"] == pytest.approx(max(recorded), abs=1e-4)
        assert loaded.report[key]["mean"] == pytest.approx(sum(recorded) / len(recorded), abs=1e-4)
    # What a user waits includes the run's own time on the engine.
    assert loaded.report["total_s"]["max"] >= loaded.report["execution_s"]["max"]


def test_percentiles_are_ordered_and_the_series_align(loaded: Loaded) -> None:
    for key in ("total_s", "queue_wait_s", "execution_s"):
        d = loaded.report[key]
        assert 0 <= d["p50"] <= d["p95"] <= d["p99"] <= d["max"], (key, d)
        assert d["mean"] <= d["max"]
    series = loaded.report["series"]
    assert set(series) == SERIES_KEYS
    assert len({len(values) for values in series.values()}) == 1
    assert DURATION_S <= len(series["t_s"]) <= DURATION_S + 40  # one point a second, stop included
    assert max(series["users"]) == 2
    assert any(q is not None for q in series["queue_length"])  # sampled from the server's /api/engine
    assert all(q is None or q >= 0 for q in series["queue_length"])
    assert any(p is not None for p in series["p50_s"]) and max(series["rps"]) > 0


def test_progress_came_about_once_a_second(loaded: Loaded) -> None:
    assert len(loaded.progress) >= DURATION_S - 2
    assert set(loaded.progress[-1]) == {"elapsed_s", "users", "requests", "failures", "p50_s"}
    assert [p["elapsed_s"] for p in loaded.progress] == sorted(p["elapsed_s"] for p in loaded.progress)
    assert loaded.progress[-1]["requests"] > 0


def test_the_plots_are_pngs_and_the_summary_reads(loaded: Loaded) -> None:
    assert loaded.report["plots"] and {"latency.png", "throughput.png", "queue.png"} <= set(loaded.report["plots"])
    for name in loaded.report["plots"]:
        with Image.open(loaded.out / name) as image:
            assert image.format == "PNG" and image.size[0] >= 400
    summary = (loaded.out / "summary.md").read_text()
    assert loaded.report["slug"] in summary and f"{loaded.report['requests']} submitted" in summary
    assert "queue wait" in summary


def test_the_locustfile_runs_on_its_own(loaded: Loaded, server: AppServer, runner: dict[str, str],
                                        http: httpx.Client, admin: dict[str, str], demo: str,
                                        tmp_path: Path) -> None:
    """As someone who exported it would run it: plain Locust, the key in the environment."""
    before = len(server_runs(http, admin, demo))
    done = subprocess.run([sys.executable, "-m", "locust", "-f", str(loaded.out / "locustfile.py"), "--headless",
                           "-u", "1", "-r", "1", "-t", "2s", "-s", "20", "--host", server.url, "--json",
                           "--skip-log"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "COMFY_PUBLISHER_API_KEY": key_of(runner)})
    assert done.returncode == 0, done.stderr[-3000:]
    (runs,) = [entry for entry in json.loads(done.stdout) if entry["method"] == "RUN"]
    assert runs["name"] == demo and runs["num_requests"] >= 1 and runs["num_failures"] == 0
    # --stop-timeout lets the run under way end: each run the server recorded was one Locust counted.
    assert len(server_runs(http, admin, demo)) == before + runs["num_requests"]
    assert key_of(runner) not in (loaded.out / "locustfile.py").read_text()


def test_simulated_users_vary_texts_and_seeds_and_keep_the_other_defaults(tmp_path: Path) -> None:
    from app.loadtest.locustfile import PROMPTS, render_locustfile

    app = {"slug": "t2i", "version": 3, "latest": {"timeout_s": 60, "inputs": [
        {"name": "prompt", "type": "text", "max_length": 12, "default": "a cat"},
        {"name": "seed", "type": "seed", "min": 0, "max": 2**64 - 1, "default": 7},
        {"name": "steps", "type": "int", "min": 1, "max": 50, "default": 20},
        {"name": "sampler", "type": "choice", "choices": ["euler", "ddim"], "default": "ddim"},
        {"name": "photo", "type": "image", "default": "example.png"}]}}
    path = tmp_path / "locustfile.py"
    path.write_text(render_locustfile(app, LoadTestOptions(slug="t2i", users=1, spawn_rate=1, duration_s=1)))
    code = ("import json, random, runpy, sys; m = runpy.run_path(sys.argv[1]); "
            "print(json.dumps([m['make_inputs'](random.Random(i)) for i in range(30)]))")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    assert {tuple(sorted(m)) for m in made} == {("prompt", "sampler", "seed", "steps")}  # the image: the app's own
    assert len({m["prompt"] for m in made}) > 3 and all(m["prompt"] in [p[:12] for p in PROMPTS] for m in made)
    assert len({m["seed"] for m in made}) > 20 and all(0 <= m["seed"] < 2**32 for m in made)
    assert {m["steps"] for m in made} == {20} and {m["sampler"] for m in made} == {"ddim"}


def test_bad_slug_and_bad_key_are_refused_before_locust_starts(server: AppServer, runner: dict[str, str],
                                                               demo: str, tmp_path: Path) -> None:
    def attempt(slug: str, key: str) -> str:
        options = LoadTestOptions(slug=slug, users=1, spawn_rate=1, duration_s=5)
        with pytest.raises(LoadTestError) as error:
            asyncio.run(run_load_test(options, base_url=server.url, api_key=key, out_dir=tmp_path / "out"))
        return str(error.value)

    assert "No app 'no-such-app'" in attempt("no-such-app", key_of(runner))
    assert "refused the key" in attempt(demo, "cpk_not-a-key") and "--key" in attempt(demo, "cpk_not-a-key")
    assert "private" in attempt(demo, "")
    assert "Cannot reach the server" in asyncio_error(f"http://127.0.0.1:{free_port()}", demo, tmp_path)
    assert not (tmp_path / "out").exists()


def asyncio_error(url: str, slug: str, tmp_path: Path) -> str:
    options = LoadTestOptions(slug=slug, users=1, spawn_rate=1, duration_s=5)
    with pytest.raises(LoadTestError) as error:
        asyncio.run(run_load_test(options, base_url=url, api_key="k", out_dir=tmp_path / "out"))
    return str(error.value)


def test_options_out_of_bounds_name_the_flag_and_the_limit() -> None:
    for kwargs, says in (({"users": MAX_USERS + 1}, f"--users must be from 1 to {MAX_USERS}"),
                         ({"users": 0}, "--users"), ({"spawn_rate": 0}, "--spawn-rate"),
                         ({"duration_s": 7200}, "--duration must be from 1 up to 3600"),
                         ({"think_min_s": 5, "think_max_s": 1}, "--think"), ({"target": "aws"}, "--target"),
                         ({"max_runs": 0}, "--max-runs")):
        with pytest.raises(ValueError, match=says.replace("-", r"\-")):
            LoadTestOptions(**{"slug": "demo", "users": 2, "spawn_rate": 1, "duration_s": 10, **kwargs})


def cli(server: AppServer, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "launch.py", "--data-dir", str(server.data_dir), "loadtest", *args,
                           "--url", server.url, *(["--key", key] if key else [])],
                          cwd=REPO, capture_output=True, text=True, timeout=180)


def test_the_cli_stops_after_max_runs_and_prints_the_summary(server: AppServer, runner: dict[str, str],
                                                             http: httpx.Client, admin: dict[str, str],
                                                             tmp_path: Path) -> None:
    slug = publish_demo(http, admin)
    done = cli(server, slug, "--users", "2", "--spawn-rate", "2", "--duration", "120", "--think", "0-0.2",
               "--max-runs", "5", "--out", str(tmp_path / "out"), key=key_of(runner))
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["requests"] == report["successes"] == 5 == len(server_runs(http, admin, slug))
    assert len(report["series"]["t_s"]) < 60  # bounded in count: it stopped long before its duration
    assert f"Load test of `{slug}`" in done.stdout and "users" in done.stdout
    assert key_of(runner) not in done.stdout + done.stderr
    assert key_of(runner) not in "".join(p.read_text(errors="replace") for p in (tmp_path / "out").iterdir()
                                         if p.suffix in (".json", ".md", ".py", ".csv", ".log", ".jsonl"))


def test_the_cli_refuses_bad_input_with_exit_code_2(server: AppServer, runner: dict[str, str], demo: str,
                                                    tmp_path: Path) -> None:
    out = ["--out", str(tmp_path / "out")]
    for args, says in ((["--users", "500", "--duration", "5"], "--users must be from 1 to 200"),
                       (["--users", "2", "--duration", "5", "--think", "soon"], "--think takes MIN-MAX"),
                       (["--users", "2"], "--duration")):
        done = cli(server, demo, *args, *out, key=key_of(runner))
        assert done.returncode == 2 and says in done.stderr, (args, done.stderr)
    done = cli(server, "no-such-app", "--users", "1", "--duration", "5", *out, key=key_of(runner))
    assert done.returncode == 2 and "No app 'no-such-app'" in done.stderr
    assert not (tmp_path / "out").exists()


def test_export_writes_the_locustfile_and_runs_nothing(server: AppServer, runner: dict[str, str],
                                                       http: httpx.Client, admin: dict[str, str], demo: str,
                                                       tmp_path: Path) -> None:
    before = len(server_runs(http, admin, demo))
    path = tmp_path / "locustfile.py"
    done = cli(server, demo, "--export-locustfile", str(path), "--think", "2-4", key=key_of(runner))
    assert done.returncode == 0, done.stderr
    source = path.read_text()
    compile(source, str(path), "exec")
    assert f"/api/apps/{demo}/versions/1/runs" in source and "'think_min_s': 2.0" in source
    assert "COMFY_PUBLISHER_API_KEY" in source and key_of(runner) not in source and server.url not in source
    assert len(server_runs(http, admin, demo)) == before


def test_modal_target_needs_a_live_deployment_and_goes_to_its_recorded_url(
        server: AppServer, admin: dict[str, str], http: httpx.Client, tmp_path: Path) -> None:
    slug = publish_demo(http, admin)
    options = LoadTestOptions(slug=slug, users=1, spawn_rate=1, duration_s=5, target="modal")

    def attempt(key: str, endpoint_key: str | None = "k") -> str:
        with pytest.raises(LoadTestError) as error:
            asyncio.run(run_load_test(options, base_url=server.url, api_key=key, out_dir=tmp_path / "out",
                                      endpoint_key=endpoint_key))
        return str(error.value)

    no_deployment = attempt(key_of(admin))
    assert "has no live Modal deployment" in no_deployment and f"launch.py deploy {slug}" in no_deployment
    dead = f"http://127.0.0.1:{free_port()}"
    record_live_deployment(server, slug, dead)
    assert f"deployment at {dead} does not answer" in attempt(key_of(admin))
    assert "endpoint key" in attempt(key_of(admin), endpoint_key=None)
    # The CLI derives the endpoint key from the server's data dir and reaches the same edge.
    done = cli(server, slug, "--target", "modal", "--users", "1", "--duration", "5", "--out", str(tmp_path / "o"),
               key=key_of(admin))
    assert done.returncode == 2 and f"deployment at {dead} does not answer" in done.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()
    # Its locustfile speaks the deployment's endpoint: queue at /api/runs, poll the status.
    exported = tmp_path / "modal_locustfile.py"
    done = cli(server, slug, "--target", "modal", "--export-locustfile", str(exported), key=key_of(admin))
    assert done.returncode == 0, done.stderr
    assert f"--host {dead}" in done.stdout and "endpoint key" in done.stdout
    assert "'submit_path': '/api/runs'" in exported.read_text() and "'follow': 'poll'" in exported.read_text()


def test_a_runner_key_may_not_read_deployments(server: AppServer, runner: dict[str, str], demo: str,
                                               tmp_path: Path) -> None:
    options = LoadTestOptions(slug=demo, users=1, spawn_rate=1, duration_s=5, target="modal")
    with pytest.raises(LoadTestError, match="admin key"):
        asyncio.run(run_load_test(options, base_url=server.url, api_key=key_of(runner), out_dir=tmp_path / "out",
                                  endpoint_key="k"))


def test_failed_runs_are_counted_by_kind_and_nothing_is_measured_of_them(
        server: AppServer, runner: dict[str, str], http: httpx.Client, admin: dict[str, str],
        engine_settings: EngineSettings, tmp_path: Path) -> None:
    broken_png = f"broken-{uuid.uuid4().hex[:6]}.png"
    (engine_settings.data_dir / "comfyui" / "input" / broken_png).write_bytes(b"not an image")  # fails as it runs
    response = http.post("/api/apps", headers=admin, json={"name": "Broken", "slug": f"broken-{uuid.uuid4().hex[:6]}",
                                                           "workflow": load_invert(broken_png), "inputs": []})
    assert response.status_code == 201, response.text
    slug = response.json()["slug"]
    options = LoadTestOptions(slug=slug, users=1, spawn_rate=1, duration_s=60, think_min_s=0, think_max_s=0,
                              max_runs=3)
    report = asyncio.run(run_load_test(options, base_url=server.url, api_key=key_of(runner), out_dir=tmp_path))
    assert report["requests"] == 3 and report["successes"] == 0 and report["failures"] == {"run_failed": 3}
    assert {run["status"] for run in server_runs(http, admin, slug)} == {"failed"}
    assert set(report["total_s"].values()) == {None}  # a failed run's wait is no latency of the app
    assert report["queue_wait_s"]["max"] is not None  # it was queued, and its record says how long
    assert "run_failed 3" in (tmp_path / "summary.md").read_text()


def locust_processes(marker: str) -> list[int]:
    """Processes whose command line names `marker` (the load test's own folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_cancelling_a_load_test_stops_locust_and_its_runs(server: AppServer, runner: dict[str, str],
                                                          http: httpx.Client, admin: dict[str, str],
                                                          tmp_path: Path) -> None:
    slug = publish_demo(http, admin)
    out = tmp_path / "cancelled"
    options = LoadTestOptions(slug=slug, users=2, spawn_rate=2, duration_s=300, think_min_s=0, think_max_s=0.1)

    async def start_then_cancel() -> list[int]:
        progress: list[dict[str, Any]] = []
        task = asyncio.create_task(run_load_test(options, base_url=server.url, api_key=key_of(runner), out_dir=out,
                                                 on_progress=progress.append))
        while not (progress and progress[-1]["requests"] > 0):
            assert not task.done(), task.exception()
            await asyncio.sleep(0.2)
        running = locust_processes(str(out))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return running

    running = asyncio.run(start_then_cancel())
    assert running  # Locust was there while the test ran...
    assert locust_processes(str(out)) == []  # ...and nothing of it is left
    assert not (out / "report.json").exists()
    runs = server_runs(http, admin, slug)
    assert runs and {run["status"] for run in runs} <= {"succeeded", "cancelled"}


def test_runs_cut_off_at_the_end_are_cancelled_and_counted(server: AppServer, runner: dict[str, str],
                                                           http: httpx.Client, admin: dict[str, str],
                                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No grace at the end: users waiting for a run when the time is up are stopped at once, as a run longer than
    the grace would be. Their runs are cancelled (or had ended) and counted as unfinished, so the report still
    counts every run the server recorded. Four users without think time on one engine: runs always queue."""
    monkeypatch.setattr("app.loadtest.runner.STOP_TIMEOUT_S", 0)
    slug = publish_demo(http, admin, size=1024)
    options = LoadTestOptions(slug=slug, users=4, spawn_rate=4, duration_s=3, think_min_s=0, think_max_s=0)
    report = asyncio.run(run_load_test(options, base_url=server.url, api_key=key_of(runner), out_dir=tmp_path))
    runs = server_runs(http, admin, slug)
    assert report["requests"] == len(runs) == report["successes"] + sum(report["failures"].values())
    assert set(report["failures"]) <= {"unfinished"} and report["failures"].get("unfinished", 0) >= 1
    assert {run["status"] for run in runs} <= {"succeeded", "cancelled"}


def test_series_points_read_trailing_windows(tmp_path: Path) -> None:
    """Each second: users as last ticked, p50/p95 of the runs ended in the last 10 s, runs per second over the last
    5 s, the queue as last sampled (None before the first sample)."""
    from app.loadtest.report import EventLog, series

    t0 = 1000.0
    lines = [{"t": t0 + 0.5, "event": "tick", "users": 1}, {"t": t0 + 2.5, "event": "tick", "users": 3}]
    lines += [{"t": t0 + at, "event": "end", "ok": True, "total_s": total, "run_id": f"r{i}"}
              for i, (at, total) in enumerate([(1.5, 1.0), (2.0, 3.0), (2.2, 2.0), (14.0, 9.0)])]
    lines.append({"t": t0 + 3.0, "event": "end", "ok": False, "kind": "run_failed", "total_s": 99.0})
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"t": 1, "ev')
    log = EventLog(tmp_path / "events.jsonl")
    log.read()
    assert len(log.ends) == 5 and len(log.ticks) == 2  # the line being written waits for the next read
    s = series(log, [(t0 + 1.2, 4), (t0 + 3.1, 0)], t0, t0 + 14.5)
    assert s["t_s"] == list(range(1, 16))
    assert s["users"][:4] == [1, 1, 3, 3]
    assert s["queue_length"][:4] == [None, 4, 4, 0]
    assert s["p50_s"][:3] == [None, 2.0, 2.0] and s["p95_s"][2] == pytest.approx(2.9)  # failures are not latency
    assert s["p50_s"][12] is None and s["p50_s"][13] == 9.0  # the first three left the 10 s window at 12.2 s
    assert s["rps"][2] == pytest.approx(3 / 3) and s["rps"][9] == pytest.approx(0.0)
