"""Deploying to RunPod through the real app process and CLI, against the loopback RunPod (tests/support/
runpod_cloud.py: REST v2 for templates and endpoints, the job API for runs): the generated files, no key or no
docker daemon (fails fast, records nothing), deploy creates the template and the endpoint and records the deployment
live, a redeploy updates them, runs routed with the runtime switch reach the job API and land as ordinary runs, and
teardown deletes both. The worker's handler here is a small one answering in the handler's contract shape."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import launch
from runtimes.engine.process import free_port
from tests.support.paths import ENGINE_HOME, REPO
from tests.support.prompts import shipped
from tests.support.run_requests import image_of, inverted, png
from tests.support.runpod_cloud import KEY, RunPodCloud, progress_update
from tests.support.server import AppServer

IMAGE = "registry.example/me/demo-worker:v1"
# Outputs to a bucket: the workers get these through the template's env; the secret is never shown.
BUCKET = {"BUCKET_ENDPOINT_URL": "https://bucket.example", "BUCKET_ACCESS_KEY_ID": "AKIDLOOPBACK",
          "BUCKET_SECRET_ACCESS_KEY": "bucket-secret-loopback"}


def _handler(job: dict[str, Any]) -> dict[str, Any]:
    """A worker answering as runtimes/runpod/container/handler.py does: the demo's inverted colour as a PNG."""
    color = int(job["input"]["inputs"]["color"])
    progress_update(job, {"progress": {"node": "2", "value": 1, "max": 1}})
    data = base64.b64encode(png(inverted(color))).decode()
    return {"status": "succeeded", "run_id": job["input"]["run_id"], "applied": {"color": color}, "exec_ms": 3.0,
            "images": [{"filename": "out.png", "type": "base64", "data": data, "node_id": "2", "kind": "image",
                        "mime": "image/png", "index": 0}], "files": []}


@pytest.fixture(scope="module")
def cloud() -> Iterator[RunPodCloud]:
    with RunPodCloud(_handler) as served:
        yield served


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine_url: str, cloud: RunPodCloud) -> Iterator[AppServer]:
    app = AppServer(tmp_path_factory.mktemp("runpod-app"), comfyui_url=engine_url,
                    env={"RUNPOD_API_KEY": KEY, **cloud.env(), "HF_TOKEN": None, **BUCKET}).start()
    yield app
    app.stop()


@pytest.fixture(scope="module")
def demo(http: httpx.Client, admin: dict[str, str]) -> str:
    slug = f"demo-{uuid.uuid4().hex[:6]}"
    response = http.post("/api/apps", headers=admin, json={
        "name": "Demo", "slug": slug, "workflow": shipped("demo_invert.json"),
        "inputs": [{"node": "1", "input": "color", "name": "color"}]})
    assert response.status_code == 201, response.text
    return slug


def _cli(server: AppServer, *args: str, env: dict[str, str | None]) -> subprocess.CompletedProcess[str]:
    merged = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    return subprocess.run([sys.executable, "launch.py", "--data-dir", str(server.data_dir), "deploy", *args],
                          cwd=REPO, env=merged, capture_output=True, text=True, timeout=60)


def test_cli_shows_the_files_and_refuses_without_a_key_or_a_docker_daemon(
        server: AppServer, http: httpx.Client, admin: dict[str, str], demo: str, cloud: RunPodCloud,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    shown = _cli(server, demo, "--target", "runpod", "--show-files", "--max-workers", "2", env={})
    assert shown.returncode == 0, shown.stderr
    assert "# ===== Dockerfile =====" in shown.stdout and "# ===== handler.py =====" in shown.stdout

    def deploy(*args: str, key: str | None) -> tuple[int, str]:
        """The same command in this process (launch.main), which spares a Python start per refusal."""
        for name, value in {**cloud.env(), "RUNPOD_API_KEY": key}.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        code = launch.main(["--data-dir", str(server.data_dir), "deploy", demo, "--target", "runpod", *args])
        return code, capsys.readouterr().err

    code, said = deploy("--gpu", "T4", "--image", IMAGE, key=None)
    assert code == 2 and "--gpu: not a setting of --target runpod" in said
    code, said = deploy(key=KEY)
    assert code == 2 and "image:" in said and "--image REGISTRY/NAME:TAG" in said
    started = time.monotonic()
    code, said = deploy("--image", IMAGE, key=None)
    assert code == 1 and "RUNPOD_API_KEY" in said and time.monotonic() - started < 10, said
    # This machine has no docker daemon (or no docker at all): --build stops before anything is recorded, and says
    # how to build and push by hand.
    code, said = deploy("--image", IMAGE, "--build", key=KEY)
    assert code == 1 and "--build" in said, said
    assert f"docker push {IMAGE}" in said and "--platform linux/amd64" in said
    assert http.get(f"/api/apps/{demo}/deployments", headers=admin).json() == []
    assert cloud.templates == {} and cloud.endpoints == {}


def _live(http: httpx.Client, admin: dict[str, str], slug: str, deployment_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = http.get(f"/api/apps/{slug}/deployments/{deployment_id}", headers=admin).json()
        if body["status"] != "deploying":
            return body
        time.sleep(0.1)
    raise AssertionError("the deploy did not finish")


def test_deploy_redeploy_runs_and_teardown_against_the_loopback_runpod(
        server: AppServer, http: httpx.Client, admin: dict[str, str], demo: str, cloud: RunPodCloud) -> None:
    bad = http.post(f"/api/apps/{demo}/deployments", headers=admin,
                    json={"target": "runpod", "image": "Not An Image", "settings": {"idle_timeout_s": 0}})
    assert bad.status_code == 422 and bad.json()["detail"]["problems"][0].startswith("idle_timeout_s")
    schema = http.get("/api/deploy/settings?target=runpod", headers=admin).json()
    assert "gpu_pools" in {f["name"] for f in schema["fields"]} and schema["credentials"] is True

    first = http.post(f"/api/apps/{demo}/deployments", headers=admin,
                      json={"target": "runpod", "image": IMAGE, "settings": {"max_workers": 2}})
    assert first.status_code == 202, first.text
    live = _live(http, admin, demo, first.json()["id"])
    assert live["status"] == "live", live
    (endpoint,) = cloud.endpoints.values()
    (template,) = cloud.templates.values()
    assert live["provider"] == "runpod" and live["url"] == cloud.job_url(endpoint["id"])
    assert template["image"] == IMAGE and endpoint["workers"]["max"] == 2
    # The bucket's keys went into RunPod's (encrypted, write-only) secrets; the template only references them.
    stored = {secret["name"]: secret["value"] for secret in cloud.secrets.values()}
    assert stored == {"comfy-publisher-bucket-access-key-id": BUCKET["BUCKET_ACCESS_KEY_ID"],
                      "comfy-publisher-bucket-secret-access-key": BUCKET["BUCKET_SECRET_ACCESS_KEY"]}
    assert template["env"] == {
        "BUCKET_ENDPOINT_URL": BUCKET["BUCKET_ENDPOINT_URL"],
        "BUCKET_ACCESS_KEY_ID": "{{ RUNPOD_SECRET_comfy-publisher-bucket-access-key-id }}",
        "BUCKET_SECRET_ACCESS_KEY": "{{ RUNPOD_SECRET_comfy-publisher-bucket-secret-access-key }}"}
    assert "BUCKET_SECRET_ACCESS_KEY" in live["log"]  # its name, never its value nor the key
    assert KEY not in live["log"] and BUCKET["BUCKET_SECRET_ACCESS_KEY"] not in live["log"]
    assert live["cost"]["gpu_pool"] == "AMPERE_24" and live["cost"]["max_hourly_usd"] > 0

    second = http.post(f"/api/apps/{demo}/deployments", headers=admin,
                       json={"target": "runpod", "image": IMAGE.replace("v1", "v2"), "settings": {"max_workers": 4}})
    assert _live(http, admin, demo, second.json()["id"])["status"] == "live"
    assert [e["id"] for e in cloud.endpoints.values()] == [endpoint["id"]]  # updated, not duplicated
    assert [t["image"] for t in cloud.templates.values()] == [IMAGE.replace("v1", "v2")]
    assert len(cloud.secrets) == 2  # rotated in place, not duplicated
    assert endpoint["id"] in {e["id"] for e in cloud.endpoints.values()}
    listed = http.get(f"/api/apps/{demo}/deployments", headers=admin).json()
    assert [d["status"] for d in listed] == ["live", "stopped"]  # the redeploy superseded the first

    switched = http.put(f"/api/apps/{demo}/runtime", headers=admin, json={"runtime": "runpod"})
    assert switched.status_code == 200 and switched.json()["runtime"] == "runpod"
    run = http.post(f"/api/apps/{demo}/run", headers=admin, json={"inputs": {"color": 0xFF00FF}}).json()
    assert run["status"] == "succeeded", run
    assert run["worker"] == f"runpod:{listed[0]['app_name']}"
    (output,) = run["outputs"]
    assert image_of(http.get(output["url"], headers=admin).content).getpixel((0, 0)) == inverted(0xFF00FF)
    assert cloud.bodies("POST", "/run")[-1]["input"]["inputs"] == {"color": 0xFF00FF}

    torn = http.delete(f"/api/apps/{demo}/deployments?target=runpod", headers=admin)
    assert torn.status_code == 200 and torn.json()["stopped"] == 1
    assert cloud.endpoints == {} and cloud.templates == {}
    assert http.get(f"/api/apps/{demo}/runtime", headers=admin).json()["runtime"] == "local"
    local = http.post(f"/api/apps/{demo}/run", headers=admin, json={"inputs": {"color": 1}}).json()
    assert local["status"] == "succeeded" and not local["worker"].startswith("runpod:")


def _ctrl_c_as_in_a_terminal() -> None:
    """SIGINT back to its default in the command's process: a suite run as a background job (`make test &`, as CI
    may) has it ignored, an ignored SIGINT stays ignored across exec, and Python then raises no KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_serve_locally_runs_the_generated_handler_under_the_sdks_local_api(server: AppServer, demo: str,
                                                                           tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "BUCKET_", "COMFY_PUBLISHER_"))}
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen([sys.executable, "launch.py", "--data-dir", str(server.data_dir), "--engine-home",
                                str(ENGINE_HOME), "deploy", demo, "--target", "runpod", "--serve-locally", "--port",
                                str(port)], cwd=REPO, env={**env, "UVICORN_LOG_LEVEL": "warning"}, stdout=log,
                               stderr=subprocess.STDOUT, preexec_fn=_ctrl_c_as_in_a_terminal)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{url}/openapi.json", trust_env=False, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        done = httpx.post(f"{url}/runsync", json={"input": {"inputs": {"color": 0x00FF00}}}, trust_env=False,
                          timeout=120).json()
        assert done["status"] == "COMPLETED", done
        (image,) = done["output"]["images"]
        assert image_of(base64.b64decode(image["data"])).getpixel((0, 0)) == inverted(0x00FF00)
        printed = (tmp_path / "serve.log").read_text()
        assert f"curl -s -X POST {url}/runsync" in printed and '"workflow"' in printed
        process.send_signal(signal.SIGINT)  # Ctrl-C: the handler and its engine stop, the command ends
        try:  # within serve-locally's own limits (the handler's 20 s to stop, then 5 s after SIGTERM), with room
            code = process.wait(60)
        except subprocess.TimeoutExpired:
            pytest.fail("serve-locally did not end after Ctrl-C:\n" + (tmp_path / "serve.log").read_text()[-3000:])
        assert code == 0, (tmp_path / "serve.log").read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
