"""The command line (keys, publish) and the first requests after a start, while the engine still starts."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.app.test_api import publish, wait_final
from tests.support.paths import REPO, WORKFLOWS
from tests.support.prompts import shipped
from tests.support.server import AppServer


@pytest.fixture(scope="module")
def server(shared_app: AppServer) -> AppServer:
    return shared_app


def test_keys_from_the_command_line(server: AppServer) -> None:
    out = server.cli("keys", "create", "ci-bot", "--admin")
    token = out.strip().splitlines()[-1]
    assert token.startswith("cpk_") and "admin key" in out
    listing = server.cli("keys", "list")
    assert "ci-bot" in listing and "admin" in listing and token not in listing
    prefix = next(line for line in listing.splitlines() if line.endswith(" ci-bot")).split()[1]
    assert "Revoked key" in server.cli("keys", "revoke", prefix)
    assert "revoked" in server.cli("keys", "list")
    response = httpx.get(f"{server.url}/api/keys", headers={"Authorization": f"Bearer {token}"}, trust_env=False)
    assert response.status_code == 401


def test_publish_from_the_command_line_prints_the_endpoints(server: AppServer) -> None:
    key = server.create_key("admin", admin=True)
    out = subprocess.run(
        [sys.executable, "launch.py", "publish", str(WORKFLOWS / "demo_invert.json"), "--name", "CLI demo",
         "--input", "1.color=color", "--input", "1.width", "--public", "--url", server.url, "--key", key],
        cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "Published CLI demo as 'cli-demo' version 1" in out
    assert f"{server.url}/api/apps/cli-demo/run" in out
    app = httpx.get(f"{server.url}/api/apps/cli-demo", trust_env=False).json()
    assert [i["name"] for i in app["latest"]["inputs"]] == ["color", "blank_image_width"]

    bad = subprocess.run(
        [sys.executable, "launch.py", "publish", str(WORKFLOWS / "demo_invert.json"), "--name", "Bad",
         "--input", "1.colour", "--url", server.url, "--key", key], cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 1 and "input 'colour' of node 1 (EmptyImage) does not exist" in bad.stderr

    # The workflow.json the ComfyUI editor saves publishes too: the server converts it.
    ui = subprocess.run(
        [sys.executable, "launch.py", "publish", str(REPO / "tests/publisher/fixtures/ui_demo_invert.json"),
         "--name", "CLI from the editor", "--input", "1.color=color", "--url", server.url, "--key", key],
        cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "Published CLI from the editor as 'cli-from-the-editor' version 1" in ui
    run = httpx.post(f"{server.url}/api/apps/cli-from-the-editor/run", json={"inputs": {"color": 0}},
                     headers={"Authorization": f"Bearer {key}"}, trust_env=False, timeout=60).json()
    assert run["status"] == "succeeded" and run["outputs"][0]["node"] == "3"


def test_history_pages_and_per_app_timeout(server: AppServer, sd15_checkpoint: str) -> None:
    admin = {"Authorization": f"Bearer {server.create_key('admin', admin=True)}"}
    workflow = shipped("txt2img_sd15.json")
    workflow["4"]["inputs"]["ckpt_name"] = sd15_checkpoint
    workflow["3"]["inputs"]["steps"] = 100
    workflow["5"]["inputs"].update(width=256, height=256)
    slow, demo = f"slow-{uuid.uuid4().hex[:6]}", f"demo-{uuid.uuid4().hex[:6]}"
    with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as http:
        assert publish(http, admin, name="Slow", slug=slow, workflow=workflow, timeout_s=2).status_code == 201
        assert publish(http, admin, name="Demo", slug=demo, workflow=shipped("demo_invert.json"),
                       inputs=[{"node": "1", "input": "color", "name": "color"}]).status_code == 201
        slow_run = http.post(f"/api/apps/{slow}/runs", json={}, headers=admin).json()
        ids = [http.post(f"/api/apps/{demo}/runs", json={"inputs": {"color": c}}, headers=admin).json()["id"]
               for c in range(5)]
        timed_out = wait_final(http, slow_run["id"], admin)
        for run_id in ids:
            wait_final(http, run_id, admin)
        first = http.get("/api/runs", params={"app": demo, "limit": 3}, headers=admin).json()
        second = http.get("/api/runs", params={"app": demo, "limit": 3, "before": first["next_before"]},
                          headers=admin).json()
        # the engine is free again after the timeout: the demo runs behind it all succeeded
        statuses = {r["status"] for r in first["runs"] + second["runs"]}

    assert timed_out["status"] == "timed_out" and timed_out["error"]["type"] == "timeout"
    assert [r["id"] for r in first["runs"] + second["runs"]] == ids[::-1]
    assert second["next_before"] is None and statuses == {"succeeded"}


def test_runs_submitted_while_the_engine_starts_wait_for_it(tmp_path: Path, engine_url: str) -> None:
    first = AppServer(tmp_path, comfyui_url=engine_url).start()
    admin = {"Authorization": f"Bearer {first.create_key('admin', admin=True)}"}
    with httpx.Client(base_url=first.url, trust_env=False, timeout=30) as http:
        publish(http, admin, name="Demo", slug="demo", workflow=shipped("demo_invert.json"), public=True)
    first.stop()

    # Same data dir, now with an engine of its own, slow to start as with heavy custom nodes (the app itself starts
    # the engine first, and is often not the slower of the two): requests start as soon as the process answers.
    # Its custom node's import waits at a gate that the test opens once the run is queued (not a fixed sleep: the
    # engine's own start, torch and all, goes on beside the app's, and the run goes as soon as the gate opens).
    gate = tmp_path / "engine-may-start"
    slow_node = tmp_path / "comfyui" / "custom_nodes" / "slow_start"
    slow_node.mkdir(parents=True)
    (slow_node / "__init__.py").write_text(
        f"import pathlib, time\n\ndeadline = time.monotonic() + 90\n"
        f"while not pathlib.Path({str(gate)!r}).exists() and time.monotonic() < deadline:\n    time.sleep(0.05)\n"
        "NODE_CLASS_MAPPINGS = {}\n")
    second = AppServer(tmp_path, comfyui_url=None).start(until="/healthz")
    ready_at: list[datetime] = []

    def watch_readiness() -> None:  # when the engine became ready, as seen from outside
        with httpx.Client(base_url=second.url, trust_env=False, timeout=5) as probe:
            while probe.get("/readyz").status_code != 200:
                time.sleep(0.02)
        ready_at.append(datetime.now(UTC))

    watcher = threading.Thread(target=watch_readiness, daemon=True)
    try:
        with httpx.Client(base_url=second.url, trust_env=False, timeout=60) as http, ThreadPoolExecutor(1) as pool:
            not_ready = http.get("/readyz")
            watcher.start()
            answer = pool.submit(http.post, "/api/apps/demo/run", json={})  # a sync run: it answers at its end
            queued = []
            while not queued and not answer.done():
                queued = http.get("/api/runs", headers=admin, params={"status": "queued"}).json()["runs"]
                time.sleep(0.02)
            gate.touch()
            run = answer.result()
            assert run.status_code == 200, run.text
        assert len(queued) == 1 and queued[0]["id"] == run.json()["id"]  # it waited, queued, for the engine
        watcher.join(30)
        assert not_ready.status_code == 503 and not_ready.json()["engine"] == "starting"
        assert run.json()["status"] == "succeeded"
        # Accepted while the engine started, and run once it was ready (the watcher polls every 20 ms).
        started = datetime.fromisoformat(run.json()["started_at"])
        assert ready_at and started >= ready_at[0] - timedelta(seconds=0.1), (started, ready_at)
    finally:
        second.stop()
