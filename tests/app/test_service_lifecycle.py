"""The service when things go wrong for real: the app killed mid-run, a full queue, webhooks."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from app.runs.webhooks import verify
from tests.app.test_api import publish, wait_final
from tests.support.paths import CHECKPOINT
from tests.support.prompts import shipped
from tests.support.server import AppServer


def _publish_apps(http: httpx.Client, admin: dict[str, str], checkpoint: str, suffix: str = "") -> tuple[str, str]:
    """Two public apps, "slow" (txt2img) and "demo" (+ suffix: on the shared app, slugs of the test's own)."""
    workflow = shipped("txt2img_sd15.json")
    workflow["4"]["inputs"]["ckpt_name"] = checkpoint
    slow = publish(http, admin, name="Slow", slug=f"slow{suffix}", workflow=workflow, public=True,
                   inputs=[{"node": "3", "input": "steps", "name": "steps"},
                           {"node": "5", "input": "width", "name": "width"},
                           {"node": "5", "input": "height", "name": "height"}])
    demo = publish(http, admin, name="Demo", slug=f"demo{suffix}", workflow=shipped("demo_invert.json"),
                   public=True, inputs=[{"node": "1", "input": "color", "name": "color"}])
    assert slow.status_code == demo.status_code == 201
    return f"slow{suffix}", f"demo{suffix}"


def _wait_status(http: httpx.Client, run_id: str, status: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = http.get(f"/api/runs/{run_id}").json()
        if run["status"] == status:
            return run
        time.sleep(0.05)
    raise TimeoutError(f"run {run_id} never became {status}: {run}")


class _FlakyReceiver(BaseHTTPRequestHandler):
    """Answers `answer` on /hook (switchable) and 410 Gone on /gone; records every call."""

    answer: ClassVar[int] = 503
    calls: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls.append((self.path, dict(self.headers), body))
        self.send_response(410 if self.path == "/gone" else type(self).answer)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _wait_webhook(http: httpx.Client, run_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = http.get(f"/api/runs/{run_id}").json()
        if (run["webhook"] or {}).get("status") == status:
            return run
        time.sleep(0.1)
    raise TimeoutError(f"the webhook of run {run_id} never became {status}: {run['webhook']}")


# One kill of the app for two stories (each app start costs seconds): the runs it held, and the webhooks it owed.
def test_killed_app_loses_nothing_duplicates_nothing_and_still_delivers_a_due_webhook(
        tmp_path: Path, engine_url: str, sd15_checkpoint: str) -> None:
    _FlakyReceiver.answer, _FlakyReceiver.calls = 503, []
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _FlakyReceiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{receiver.server_address[1]}"
    first = AppServer(tmp_path, comfyui_url=engine_url).start()
    admin = {"Authorization": f"Bearer {first.create_key('admin', admin=True)}"}
    try:
        with httpx.Client(base_url=first.url, trust_env=False, timeout=30) as http:
            slow, demo = _publish_apps(http, admin, sd15_checkpoint)
            # Two runs whose webhooks are refused: /hook for now (retried later), /gone for good (410).
            hooked = http.post(f"/api/apps/{demo}/run", json={"inputs": {"color": 5},
                                                              "webhook": f"{base}/hook"}).json()
            gone = http.post(f"/api/apps/{demo}/run", json={"inputs": {"color": 6},
                                                            "webhook": f"{base}/gone"}).json()
            refused = _wait_webhook(http, gone["id"], "failed")
            while not any(path == "/hook" for path, _, _ in _FlakyReceiver.calls):
                time.sleep(0.05)
            # Then a run on the engine and two queued behind it.
            running = http.post(f"/api/apps/{slow}/runs", json={"inputs": {"steps": 10, "width": 128,
                                                                            "height": 128}}).json()
            _wait_status(http, running["id"], "running")
            queued = [http.post(f"/api/apps/{demo}/runs", json={"inputs": {"color": c}}).json() for c in (1, 2)]
            due = http.get(f"/api/runs/{hooked['id']}").json()
        first.kill()  # the slow run on the engine, two queued, and the /hook delivery waiting for its next attempt

        _FlakyReceiver.answer = 200
        second = AppServer(tmp_path, comfyui_url=engine_url).start()
        try:
            with httpx.Client(base_url=second.url, trust_env=False, timeout=30) as http:
                done = [wait_final(http, run["id"], {}, timeout=90) for run in (running, *queued)]
                delivered = _wait_webhook(http, hooked["id"], "delivered")
                still_refused = http.get(f"/api/runs/{gone['id']}").json()
                history = http.get("/api/runs", headers=admin, params={"limit": 100}).json()["runs"]
        finally:
            second.stop()
    finally:
        receiver.shutdown()

    assert [run["status"] for run in done] == ["succeeded"] * 3
    assert done[0]["attempts"] == 2  # it was running when the app died: run again, once
    assert [run["attempts"] for run in done[1:]] == [1, 1]
    assert sorted(run["id"] for run in history) == sorted(run["id"] for run in (*done, hooked, gone))
    assert all(len(run["outputs"]) == 1 for run in done)

    assert hooked["status"] == "succeeded" and hooked["webhook"] == {"status": "pending", "error": None}
    assert due["webhook"]["status"] == "pending"
    assert refused["webhook"] == {"status": "failed", "error": "HTTP 410 Gone"}
    assert delivered["webhook"] == {"status": "delivered", "error": None}
    hook_calls = [(headers, body) for path, headers, body in _FlakyReceiver.calls if path == "/hook"]
    assert len(hook_calls) >= 2
    # The delivery after the restart is the same delivery: receivers deduplicate on its id.
    assert len({headers["Comfy-Publisher-Delivery"] for headers, _ in hook_calls}) == 1
    assert json.loads(hook_calls[-1][1])["run"]["id"] == hooked["id"]
    # A delivery that had ended (refused with 410) is not sent again after the restart.
    assert [path for path, _, _ in _FlakyReceiver.calls].count("/gone") == 1
    assert still_refused["webhook"]["status"] == "failed"


def test_a_run_interrupted_twice_by_app_deaths_is_failed(tmp_path: Path, engine_url: str,
                                                         sd15_checkpoint: str) -> None:
    server = AppServer(tmp_path, comfyui_url=engine_url).start()
    admin = {"Authorization": f"Bearer {server.create_key('admin', admin=True)}"}
    with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as http:
        slow, _ = _publish_apps(http, admin, sd15_checkpoint)
        run = http.post(f"/api/apps/{slow}/runs", json={"inputs": {"steps": 40, "width": 256,
                                                                    "height": 256}}).json()
        _wait_status(http, run["id"], "running")
    for _ in range(2):
        server.kill()
        server = AppServer(tmp_path, comfyui_url=engine_url).start()
        with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as http:
            final = http.get(f"/api/runs/{run['id']}").json()
            if final["status"] == "failed":
                break
            _wait_status(http, run["id"], "running")
    try:
        assert final["status"] == "failed" and final["attempts"] == 2
        assert final["error"]["type"] == "app_restarted"
        assert "The app stopped while this run was running (attempt 2 of 2)" in final["error"]["message"]
    finally:
        with httpx.Client(base_url=engine_url, trust_env=False) as engine:
            # The killed apps' prompts still wait or run on the shared engine: clear them for the next tests.
            engine.post("/queue", json={"clear": True})
            engine.post("/interrupt", json={})
        server.stop()


def test_full_queue_answers_429_with_retry_after(tmp_path: Path, engine_url: str, sd15_checkpoint: str) -> None:
    server = AppServer(tmp_path, comfyui_url=engine_url, extra=("--max-queue", "2")).start()
    admin = {"Authorization": f"Bearer {server.create_key('admin', admin=True)}"}
    try:
        with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as http:
            slow, demo = _publish_apps(http, admin, sd15_checkpoint)
            running = http.post(f"/api/apps/{slow}/runs", json={"inputs": {"steps": 200, "width": 256,
                                                                            "height": 256}}).json()
            _wait_status(http, running["id"], "running")
            accepted = [http.post(f"/api/apps/{demo}/runs", json={"inputs": {"color": c}}) for c in (1, 2)]
            refused = http.post(f"/api/apps/{demo}/runs", json={"inputs": {"color": 3}})
            total = len(http.get("/api/runs", headers=admin).json()["runs"])
            http.post(f"/api/runs/{running['id']}/cancel")
        assert [r.status_code for r in accepted] == [202, 202]
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert total == 3  # the refused run was never recorded
    finally:
        server.stop()


class _Receiver(BaseHTTPRequestHandler):
    calls: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls.append((dict(self.headers), body))
        self.send_response(500 if len(type(self).calls) == 1 else 200)  # the first delivery fails: retried
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    _Receiver.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Receiver.calls
    server.shutdown()


def test_webhook_is_signed_and_retried(shared_app: AppServer, sd15_checkpoint: str,
                                       receiver: tuple[str, list]) -> None:
    url, calls = receiver
    admin = {"Authorization": f"Bearer {shared_app.create_key('admin', admin=True)}"}
    with httpx.Client(base_url=shared_app.url, trust_env=False, timeout=30) as http:
        _, demo = _publish_apps(http, admin, sd15_checkpoint, suffix=f"-{uuid.uuid4().hex[:6]}")
        secret = http.get(f"/api/apps/{demo}/webhook-secret", headers=admin).json()["secret"]
        run = http.post(f"/api/apps/{demo}/run", json={"inputs": {"color": 4}, "webhook": url}).json()
        refused = http.post(f"/api/apps/{demo}/run", json={"inputs": {}, "webhook": "ftp://x/y"})
    deadline = time.monotonic() + 30
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert run["status"] == "succeeded"
    assert refused.status_code == 422 and refused.json()["detail"]["problems"][0]["input"] == "webhook"
    (first_headers, _), (headers, body) = calls[:2]
    assert verify(body, headers["Comfy-Publisher-Signature"], secret)
    assert not verify(body, headers["Comfy-Publisher-Signature"], secret + "x")
    assert headers["Comfy-Publisher-Delivery"] == first_headers["Comfy-Publisher-Delivery"]
    assert headers["Comfy-Publisher-Event"] == "run.succeeded"
    payload = json.loads(body)
    assert payload["event"] == "run.succeeded"
    assert (payload["run"]["id"], payload["run"]["status"], payload["run"]["app"]) == (run["id"], "succeeded", demo)
    assert payload["run"]["outputs"][0]["url"] == run["outputs"][0]["url"]
    assert uuid.UUID(headers["Comfy-Publisher-Delivery"])


def test_engine_killed_mid_run_is_restarted_and_the_run_retried(tmp_path: Path, sd15_checkpoint: str) -> None:
    link = tmp_path / "comfyui" / "models" / "checkpoints" / sd15_checkpoint
    link.parent.mkdir(parents=True)
    link.symlink_to(CHECKPOINT)
    server = AppServer(tmp_path, comfyui_url=None).start()  # an engine of its own, which we kill
    admin = {"Authorization": f"Bearer {server.create_key('admin', admin=True)}"}
    try:
        with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as http:
            slow, _ = _publish_apps(http, admin, sd15_checkpoint)
            run = http.post(f"/api/apps/{slow}/runs", json={"inputs": {"steps": 8, "width": 128,
                                                                        "height": 128}}).json()
            _wait_status(http, run["id"], "running")
            time.sleep(0.5)
            (engine,) = http.get("/api/engine").json()["engines"]
            os.kill(engine["pid"], signal.SIGKILL)
            final = wait_final(http, run["id"], {}, timeout=120)
            restarted = http.get("/api/engine").json()["engines"][0]
    finally:
        server.stop()
    assert final["status"] == "succeeded" and final["attempts"] == 2 and final["outputs"]
    assert restarted["restarts"] == 1 and restarted["pid"] != engine["pid"]
