"""Deploying to Modal through the real app process: settings schema, preview, deploy without credentials (fails
fast, records nothing), the CLI, and runs routed to a deployment. The deployment's endpoint is the generated
endpoint app served on loopback, its container class running locally against the real engine; only Modal's
spawn/FunctionCall edge is replaced (LocalJobs) and the deploy record is written as a finished deploy would."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from app.auth.secrets import derive_secret, load_or_create_master_key
from db import crud_apps, crud_deployments
from db.models import DeploymentStatus
from db.session import create_db_engine, make_session_factory
from runtimes.engine.install import EngineInstall
from runtimes.engine.process import free_port
from runtimes.modal.container.endpoint import create_endpoint
from runtimes.modal.container.jobs import LocalJobs
from runtimes.modal.host.generate import generate, modal_names
from runtimes.modal.host.settings import DeploySettings
from tests.runtimes.modal_support import import_bundle
from tests.support.deployments import record_live_deployment
from tests.support.paths import REPO
from tests.support.prompts import shipped
from tests.support.run_requests import image_of, inverted
from tests.support.server import AppServer
from tests.support.templates import template

NO_MODAL = {"MODAL_TOKEN_ID": "", "MODAL_TOKEN_SECRET": ""}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine_url: str) -> Iterator[AppServer]:
    home = tmp_path_factory.mktemp("home")  # no ~/.modal.toml: no Modal credentials
    app = AppServer(tmp_path_factory.mktemp("app"), comfyui_url=engine_url,
                    env={"HOME": str(home), "MODAL_TOKEN_ID": None, "MODAL_TOKEN_SECRET": None,
                         "RUNPOD_API_KEY": None}).start()
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


def test_settings_schema_lists_fields_help_and_cost(http: httpx.Client, admin: dict[str, str]) -> None:
    body = http.get("/api/deploy/settings", headers=admin).json()
    fields = {f["name"]: f for f in body["fields"]}
    assert {"gpu", "min_containers", "max_containers", "buffer_containers", "scaledown_window", "max_inputs",
            "timeout_s", "memory_snapshot", "region"} <= set(fields)
    assert fields["scaledown_window"]["min"] == 2 and fields["scaledown_window"]["max"] == 3600
    assert body["credentials"] is False and "modal token new" in body["credentials_help"]
    assert http.get("/api/deploy/settings").status_code == 401


def test_preview_shows_files_and_refuses_bad_settings(http: httpx.Client, admin: dict[str, str], demo: str) -> None:
    bad = http.post(f"/api/apps/{demo}/deployments/preview", headers=admin,
                    json={"settings": {"gpu": "GTX", "scaledown_window": 1, "max_inputs": 0}})
    assert bad.status_code == 422
    assert [p.split(":")[0] for p in bad.json()["detail"]["problems"]] == ["gpu", "scaledown_window", "max_inputs"]
    good = http.post(f"/api/apps/{demo}/deployments/preview", headers=admin,
                     json={"settings": {"gpu": "T4", "min_containers": 1}}).json()
    assert 'gpu="T4"' in good["files"]["modal_app.py"] and "min_containers=1," in good["files"]["modal_app.py"]
    assert good["cost"]["warm_pool_hourly_usd"] == 0.59


def test_model_sources_given_at_publish_become_the_volume_download(http: httpx.Client,
                                                                    admin: dict[str, str]) -> None:
    slug, source = f"t2i-{uuid.uuid4().hex[:6]}", "hf://Comfy-Org/sd15-archive/v1-5-pruned-emaonly.safetensors@main"
    body = {"name": "txt2img", "slug": slug, "workflow": shipped("txt2img_sd15.json"),
            "inputs": [{"node": "6", "input": "text", "name": "prompt"}]}
    bad = http.post("/api/apps", headers=admin, json={**body, "model_sources": {"x.safetensors": source}})
    assert bad.status_code == 422 and "'x.safetensors' is not a model file this workflow uses" in bad.text
    published = http.post("/api/apps", headers=admin,
                          json={**body, "model_sources": {"v1-5-pruned-emaonly.safetensors": source}})
    assert published.status_code == 201, published.text
    preview = http.post(f"/api/apps/{slug}/deployments/preview", headers=admin, json={"settings": {}}).json()
    assert preview["warnings"] == []
    modal_app = preview["files"]["modal_app.py"]
    assert "Comfy-Org/sd15-archive" in modal_app and "NOT DOWNLOADED" not in modal_app


def test_deploy_without_credentials_fails_fast_and_records_nothing(http: httpx.Client, admin: dict[str, str],
                                                                   demo: str) -> None:
    started = time.monotonic()
    response = http.post(f"/api/apps/{demo}/deployments", headers=admin, json={"settings": {}})
    assert time.monotonic() - started < 5
    assert response.status_code == 503 and "modal token new" in response.json()["detail"]
    assert http.get(f"/api/apps/{demo}/deployments", headers=admin).json() == []
    switch = http.put(f"/api/apps/{demo}/runtime", headers=admin, json={"runtime": "modal"})
    assert switch.status_code == 409 and "deploy it first" in switch.json()["detail"]


def test_cli_shows_files_and_fails_fast_without_credentials(server: AppServer, demo: str, tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), **NO_MODAL}
    base = [sys.executable, "launch.py", "--data-dir", str(server.data_dir), "deploy", demo]
    shown = subprocess.run([*base, "--show-files", "--gpu", "h100", "--no-memory-snapshot"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "# ===== modal_app.py =====" in shown.stdout and 'gpu="H100"' in shown.stdout
    assert "enable_memory_snapshot=False" in shown.stdout
    bad = subprocess.run([*base, "--scaledown-window", "9999"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "scaledown_window" in bad.stderr
    started = time.monotonic()
    failed = subprocess.run(base, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1 and "No Modal credentials" in failed.stderr
    assert time.monotonic() - started < 15  # includes starting Python and importing modal


class _Endpoint:
    """The generated endpoint, served on loopback in its own thread and event loop."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    def __enter__(self) -> _Endpoint:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def test_runs_go_to_the_deployment_when_the_runtime_is_switched(
    server: AppServer, http: httpx.Client, admin: dict[str, str], demo: str, engine_install: EngineInstall,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = create_db_engine(f"sqlite:///{server.data_dir / 'publisher.db'}")
    sessions = make_session_factory(db)
    with sessions() as session:
        app = crud_apps.get_app(session, slug=demo)
        version = crud_apps.get_version(session, app_id=app.id)
        spec_dict, app_id, version_id = version.spec, app.id, version.id
    from publisher import AppSpec

    module = import_bundle(generate(AppSpec.from_dict(spec_dict), DeploySettings(), slug=demo, version=1,
                                    title="Demo"), tmp_path / "bundle")
    for name, value in {"COMFYUI_DIR": engine_install.comfyui_dir, "PYTHON": engine_install.python,
                        "BASE_DIR": tmp_path / "base", "SPEC_FILE": tmp_path / "bundle" / "app_spec.json"}.items():
        monkeypatch.setenv(f"COMFY_PUBLISHER_{name}", str(value))
    worker = module.ComfyWorker._get_user_cls()()
    worker.start_engine()
    worker.hand_over_gpu()
    key = derive_secret(load_or_create_master_key(server.data_dir), f"modal-endpoint:{demo}")
    try:
        with _Endpoint(create_endpoint(worker.worker.spec, LocalJobs(worker.run), key=key)) as endpoint:
            with sessions() as session:  # what a finished deploy records
                row = crud_deployments.create_deployment(session, app_id=app_id, version_id=version_id,
                                                         provider="modal", settings=DeploySettings().to_dict(),
                                                         app_name=modal_names(demo)[0])
                crud_deployments.finish_deployment(session, deployment_id=row.id,
                                                   status=DeploymentStatus.LIVE.value, url=endpoint.url)
            switched = http.put(f"/api/apps/{demo}/runtime", headers=admin, json={"runtime": "modal"})
            assert switched.status_code == 200 and switched.json()["deployment"]["url"] == endpoint.url
            run = http.post(f"/api/apps/{demo}/run", headers=admin, json={"inputs": {"color": 0xFF00FF}}).json()
            assert run["status"] == "succeeded", run
            assert run["worker"] == f"modal:{modal_names(demo)[0]}"
            (output,) = run["outputs"]
            image = http.get(output["url"], headers=admin)
            assert image_of(image.content).getpixel((0, 0)) == inverted(0xFF00FF)

            assert http.put(f"/api/apps/{demo}/runtime", headers=admin, json={"runtime": "local"}).status_code == 200
            local = http.post(f"/api/apps/{demo}/run", headers=admin, json={"inputs": {"color": 1}}).json()
            assert local["status"] == "succeeded" and not local["worker"].startswith("modal:")
    finally:
        worker.stop_engine()
        db.dispose()


def test_model_sources_a_ui_file_declares_are_used_unless_the_publisher_gives_one(http: httpx.Client,
                                                                                 admin: dict[str, str]) -> None:
    workflow = template("image2image.json")  # its checkpoint loader declares properties.models
    declared = "hf://Comfy-Org/stable-diffusion-v1-5-archive/v1-5-pruned-emaonly-fp16.safetensors"
    analyzed = http.post("/api/workflows/analyze", headers=admin, json={"workflow": workflow}).json()
    assert [(m["filename"], m["source"]) for m in analyzed["models"]] == [
        ("v1-5-pruned-emaonly-fp16.safetensors", declared)]

    slug = f"i2i-{uuid.uuid4().hex[:6]}"
    published = http.post("/api/apps", headers=admin, json={"name": "i2i", "slug": slug, "workflow": workflow})
    assert published.status_code == 201, published.text
    assert [m["source"] for m in http.get(f"/api/apps/{slug}", headers=admin).json()["latest"]["models"]] == [declared]
    preview = http.post(f"/api/apps/{slug}/deployments/preview", headers=admin, json={"settings": {}}).json()
    assert preview["warnings"] == []  # the deployment's Volume can be filled: nothing left to upload by hand

    own = "hf://me/my-sd15/v1-5-pruned-emaonly-fp16.safetensors@v2"
    again = http.post("/api/apps", headers=admin, json={"name": "i2i", "slug": slug, "workflow": workflow,
                                                        "model_sources": {"v1-5-pruned-emaonly-fp16.safetensors": own}})
    assert again.status_code == 201, again.text
    assert [m["source"] for m in http.get(f"/api/apps/{slug}", headers=admin).json()["latest"]["models"]] == [own]


def test_a_version_whose_node_pack_pin_cannot_go_into_an_image_is_refused_with_a_422(
    server: AppServer, http: httpx.Client, admin: dict[str, str],
) -> None:
    slug = f"packs-{uuid.uuid4().hex[:6]}"
    assert http.post("/api/apps", headers=admin, json={
        "name": "Packs", "slug": slug, "workflow": shipped("demo_invert.json"),
        "inputs": [{"node": "1", "input": "color", "name": "color"}]}).status_code == 201
    db = create_db_engine(f"sqlite:///{server.data_dir / 'publisher.db'}")
    try:
        with make_session_factory(db)() as session:  # a pin as publish stores it, but a branch, not a commit
            app = crud_apps.get_app(session, slug=slug)
            version = crud_apps.get_version(session, app_id=app.id)
            version.spec = {**version.spec, "custom_nodes": [{"repo": "https://github.com/a/pack", "commit": "main"}]}
            session.commit()
    finally:
        db.dispose()
    response = http.post(f"/api/apps/{slug}/deployments/preview", headers=admin, json={"settings": {}})
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]["problems"]
    assert problem.startswith("custom_nodes[0]") and "40-hex commit" in problem


def test_runpod_without_a_key_deploys_nothing_and_runs_routed_there_fail_clearly(
        server: AppServer, http: httpx.Client, admin: dict[str, str]) -> None:
    slug = f"rp-{uuid.uuid4().hex[:6]}"
    assert http.post("/api/apps", headers=admin, json={
        "name": "RunPod demo", "slug": slug, "workflow": shipped("demo_invert.json"),
        "inputs": [{"node": "1", "input": "color", "name": "color"}]}).status_code == 201
    no_image = http.post(f"/api/apps/{slug}/deployments", headers=admin, json={"target": "runpod"})
    assert no_image.status_code == 422 and no_image.json()["detail"]["problems"][0].startswith("image:")
    started = time.monotonic()
    response = http.post(f"/api/apps/{slug}/deployments", headers=admin,
                         json={"target": "runpod", "image": "docker.io/me/worker:v1"})
    assert time.monotonic() - started < 5
    assert response.status_code == 503 and "RUNPOD_API_KEY" in response.json()["detail"]
    assert http.get(f"/api/apps/{slug}/deployments", headers=admin).json() == []
    preview = http.post(f"/api/apps/{slug}/deployments/preview", headers=admin, json={"target": "runpod"}).json()
    assert {"Dockerfile", "handler.py"} <= set(preview["files"])
    assert http.get("/api/deploy/settings?target=runpod", headers=admin).json()["credentials"] is False

    # A live RunPod deployment (deployed from elsewhere): this server has no key to reach it, and says so.
    record_live_deployment(server, slug, "http://127.0.0.1:9/v2/abc", provider="runpod")
    assert http.put(f"/api/apps/{slug}/runtime", headers=admin, json={"runtime": "modal"}).status_code == 409
    assert http.put(f"/api/apps/{slug}/runtime", headers=admin, json={"runtime": "runpod"}).json()["runtime"] == \
        "runpod"
    run = http.post(f"/api/apps/{slug}/run", headers=admin, json={"inputs": {"color": 1}}).json()
    assert run["status"] == "failed" and "RUNPOD_API_KEY" in run["error"]["message"], run
