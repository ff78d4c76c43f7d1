"""GET /metrics: known runs through the real app and engine, read back with prometheus_client's own parser."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.metrics import GpuCollector, LiveState, Metrics
from runtimes.engine.manager import EngineSettings
from tests.support.prompts import load_invert, shipped
from tests.support.server import AppServer

P = "comfy_publisher_"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine_url: str) -> Iterator[AppServer]:
    app = AppServer(tmp_path_factory.mktemp("app"), comfyui_url=engine_url).start()
    yield app
    app.stop()


class _Receiver(BaseHTTPRequestHandler):
    """A webhook receiver: 200 on /hook, 410 Gone (given up at once) on /gone."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(410 if self.path == "/gone" else 200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def scrape(http: httpx.Client, headers: dict[str, str]) -> Samples:
    response = http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((P + name, frozenset(labels.items())))


def publish(http: httpx.Client, admin: dict[str, str], name: str, workflow: dict[str, Any]) -> str:
    response = http.post("/api/apps", headers=admin, json={"name": name, "slug": f"{name}-{uuid.uuid4().hex[:6]}",
                                                           "workflow": workflow, "inputs": []})
    assert response.status_code == 201, response.text
    return str(response.json()["slug"])


def wait_webhook(http: httpx.Client, run_id: str, headers: dict[str, str]) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        webhook = http.get(f"/api/runs/{run_id}", headers=headers).json()["webhook"] or {}
        if webhook.get("status") in ("delivered", "failed"):
            return str(webhook["status"])
        time.sleep(0.05)
    raise TimeoutError(f"the webhook of run {run_id} never ended")


def test_runs_queue_workers_and_webhooks_are_counted(http: httpx.Client, admin: dict[str, str],
                                                     runner: dict[str, str], receiver: str,
                                                     engine_settings: EngineSettings) -> None:
    demo = publish(http, admin, "demo", shipped("demo_invert.json"))
    broken_png = f"broken-{uuid.uuid4().hex[:6]}.png"
    (engine_settings.data_dir / "comfyui" / "input" / broken_png).write_bytes(b"not an image")  # fails as it runs
    broken = publish(http, admin, "broken", load_invert(broken_png))
    before = scrape(http, admin)
    assert value(before, "runs_total", app=demo, status="succeeded") is None

    ends = [http.post(f"/api/apps/{demo}/run", headers=runner, json=body).json()
            for body in ({"inputs": {}}, {"inputs": {}, "webhook": f"{receiver}/hook"},
                         {"inputs": {}, "webhook": f"{receiver}/gone"})]
    ends.append(http.post(f"/api/apps/{broken}/run", headers=runner, json={"inputs": {}}).json())
    assert [run["status"] for run in ends] == ["succeeded", "succeeded", "succeeded", "failed"], ends
    assert [wait_webhook(http, run["id"], runner) for run in ends[1:3]] == ["delivered", "failed"]

    after = scrape(http, admin)
    assert value(after, "runs_total", app=demo, status="succeeded") == 3
    assert value(after, "runs_total", app=broken, status="failed") == 1
    assert {dict(labels)["status"] for (name, labels) in after if name == P + "runs_total"
            and dict(labels)["app"] in (demo, broken)} == {"succeeded", "failed"}
    assert value(after, "runs_submitted_total", app=demo) == 3
    assert value(after, "runs_submitted_total", app=broken) == 1
    for histogram in ("run_queue_wait_seconds", "run_execution_seconds"):
        assert value(after, f"{histogram}_count", app=demo) == 3
        assert value(after, f"{histogram}_count", app=broken) == 1  # it started, then failed on the engine
        assert value(after, f"{histogram}_bucket", app=demo, le="+Inf") == 3
        assert (value(after, f"{histogram}_sum", app=demo) or 0) > 0
    assert value(after, "queue_length") == 0
    assert value(after, "workers", state="idle") == 1 and value(after, "workers", state="busy") == 0
    assert value(after, "engine_restarts_total", engine="engine-0") == 0
    assert value(after, "webhook_deliveries_total", outcome="delivered") == 1
    assert value(after, "webhook_deliveries_total", outcome="failed") == 1


def wait_status(http: httpx.Client, run_id: str, headers: dict[str, str], *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while (run := http.get(f"/api/runs/{run_id}", headers=headers).json())["status"] not in statuses:
        assert time.monotonic() < deadline, run
        time.sleep(0.05)
    return run


def test_queue_and_busy_worker_are_read_live_and_cancelled_runs_counted(
        http: httpx.Client, admin: dict[str, str], sd15_checkpoint: str) -> None:
    workflow = shipped("txt2img_sd15.json")
    workflow["4"]["inputs"]["ckpt_name"] = sd15_checkpoint
    workflow["3"]["inputs"]["steps"] = 5000  # holds the only worker until it is cancelled
    workflow["5"]["inputs"].update(width=64, height=64)
    slow = publish(http, admin, "slow", workflow)
    demo = publish(http, admin, "queued", shipped("demo_invert.json"))
    running = http.post(f"/api/apps/{slow}/runs", headers=admin, json={"inputs": {}}).json()
    wait_status(http, running["id"], admin, "running")
    queued = [http.post(f"/api/apps/{demo}/runs", headers=admin, json={"inputs": {}}).json() for _ in range(2)]
    assert [run["status"] for run in queued] == ["queued", "queued"]

    busy = scrape(http, admin)
    for run in [*queued, running]:
        assert http.post(f"/api/runs/{run['id']}/cancel", headers=admin).status_code == 200
    ends = [wait_status(http, run["id"], admin, "cancelled", "succeeded", "failed") for run in [*queued, running]]
    assert [run["status"] for run in ends] == ["cancelled"] * 3
    idle = scrape(http, admin)

    assert value(busy, "queue_length") == 2
    assert value(busy, "workers", state="busy") == 1 and value(busy, "workers", state="idle") == 0
    assert value(idle, "queue_length") == 0
    assert value(idle, "workers", state="busy") == 0 and value(idle, "workers", state="idle") == 1
    assert value(idle, "runs_total", app=demo, status="cancelled") == 2
    assert value(idle, "run_queue_wait_seconds_count", app=demo) is None  # never started: no wait, no execution
    assert value(idle, "runs_total", app=slow, status="cancelled") == 1
    assert value(idle, "run_execution_seconds_count", app=slow) == 1


def test_gpu_series_only_where_nvml_finds_a_gpu(http: httpx.Client, admin: dict[str, str]) -> None:
    gpus = list(GpuCollector().collect())  # the real NVML of this machine, as the app sees it
    names = {name for (name, _) in scrape(http, admin) if name.startswith(P + "gpu_")}
    if not gpus:  # no driver or no GPU (the CI machines): no series, and the scrape still answers
        assert names == set()
    else:  # a GPU machine: utilisation and memory per GPU
        assert names == {P + "gpu_utilization_percent", P + "gpu_memory_used_bytes", P + "gpu_memory_total_bytes"}


def test_nvml_failing_mid_scrape_gives_no_gpu_series_and_no_error() -> None:
    import pynvml

    class LostGpu:  # stands in for a driver whose GPU fell off the bus (cannot be made to happen here)
        def nvmlDeviceGetCount(self) -> int:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)

    collector = GpuCollector()
    collector._nvml = LostGpu()
    assert list(collector.collect()) == []


def test_metrics_need_an_admin_key(http: httpx.Client, runner: dict[str, str]) -> None:
    assert http.get("/metrics").status_code == 401
    assert http.get("/metrics", headers={"Authorization": "Bearer not-a-key"}).status_code == 401
    assert http.get("/metrics", headers=runner).status_code == 403
    assert "/metrics" not in http.get("/openapi.json").json()["paths"]


@pytest.fixture(scope="module")
def own_engine_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """An app with an engine of its own (which a test kills) and /metrics open: one start for the two tests."""
    app = AppServer(tmp_path_factory.mktemp("own-engine"), comfyui_url=None, extra=("--metrics-open",)).start()
    yield app
    app.stop()


def test_metrics_open_serves_a_scraper_without_a_key(own_engine_app: AppServer) -> None:
    with httpx.Client(base_url=own_engine_app.url, timeout=30, trust_env=False) as http:
        samples = scrape(http, {})
    assert value(samples, "queue_length") == 0


def test_an_engine_restart_is_counted(own_engine_app: AppServer) -> None:
    app = own_engine_app
    admin = {"Authorization": f"Bearer {app.create_key('admin', admin=True)}"}
    with httpx.Client(base_url=app.url, timeout=30, trust_env=False) as http:
        (engine,) = app.engines()
        assert value(scrape(http, admin), "engine_restarts_total", engine=engine["name"]) == 0
        os.kill(engine["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 120
        while (now := app.engines()[0])["pid"] in (engine["pid"], None) or not now["url"]:
            assert time.monotonic() < deadline, now
            time.sleep(0.2)
        samples = scrape(http, admin)
    assert value(samples, "engine_restarts_total", engine=engine["name"]) == 1


def test_two_apps_in_one_process_keep_their_own_series() -> None:
    def idle() -> LiveState:
        return LiveState(queued=lambda: 0, workers=lambda: 1, busy=lambda: 0, engine_restarts=dict)

    first, second = Metrics(idle()), Metrics(idle())  # the default registry would refuse the second
    first.run_submitted("demo")

    def submitted(metrics: Metrics) -> float | None:
        families = text_string_to_metric_families(metrics.render().decode())
        return {(s.name, frozenset(s.labels.items())): s.value
                for f in families for s in f.samples}.get((P + "runs_submitted_total", frozenset({("app", "demo")})))

    assert (submitted(first), submitted(second)) == (1, None)
