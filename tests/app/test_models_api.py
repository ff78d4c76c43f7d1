"""Model files over the API of the real app process: what an app needs, a background fetch from a loopback server
speaking the Hub's protocol followed to its end, and the same app's files through the CLI by its slug."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.hub_server import HubServer
from tests.support.paths import REPO
from tests.support.prompts import node_of, shipped
from tests.support.server import AppServer

CONTENT = os.urandom(12 * 1024 * 1024)  # more than one of huggingface_hub's 10 MiB chunks: progress moves


@pytest.fixture(scope="module")
def hub() -> Iterator[HubServer]:
    with HubServer() as server:
        server.add("owner/models", "weights.safetensors", CONTENT)
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine_url: str, hub: HubServer) -> Iterator[AppServer]:
    data_dir = tmp_path_factory.mktemp("app")
    # The session's engine is given by URL: the app is told which models folder to fill (its own data dir's).
    app = AppServer(data_dir, comfyui_url=engine_url, extra=("--models-dir", str(data_dir / "comfyui" / "models")),
                    env=hub.app_env(tmp_path_factory.mktemp("hf-home"))).start()
    yield app
    app.stop()


def publish(http: httpx.Client, admin: dict[str, str], checkpoint: str, sources: dict[str, str]) -> str:
    workflow = shipped("txt2img_sd15.json")
    workflow[node_of(workflow, "CheckpointLoaderSimple")]["inputs"]["ckpt_name"] = checkpoint
    slug = f"m-{uuid.uuid4().hex[:8]}"
    response = http.post("/api/apps", headers=admin, json={"name": slug, "slug": slug, "workflow": workflow,
                                                           "model_sources": sources})
    assert response.status_code == 201, response.text
    return slug


def wait_for(http: httpx.Client, admin: dict[str, str], job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job: dict[str, Any] = http.get(f"/api/models/fetches/{job_id}", headers=admin).json()
        if job["finished"]:
            return job
        time.sleep(0.2)
    raise AssertionError(f"the fetch did not finish: {job}")


def test_an_apps_missing_model_is_fetched_in_the_background(http: httpx.Client, admin: dict[str, str],
                                                            server: AppServer) -> None:
    slug = publish(http, admin, "api-fetched.safetensors",
                   {"api-fetched.safetensors": "hf://owner/models/weights.safetensors"})
    needs = http.get(f"/api/apps/{slug}/models", headers=admin).json()
    assert needs["missing"] == 1 and needs["models"][0]["source"] == "hf://owner/models/weights.safetensors"
    started = http.post(f"/api/apps/{slug}/models/fetch", headers=admin)
    assert started.status_code == 202, started.text
    job = wait_for(http, admin, started.json()["id"])
    assert not job["failed"], job
    assert [(f["folder"], f["filename"], f["state"], f["done"], f["total"]) for f in job["files"]] == [
        ("checkpoints", "api-fetched.safetensors", "fetched", len(CONTENT), len(CONTENT))]
    assert (server.data_dir / "comfyui/models/checkpoints/api-fetched.safetensors").read_bytes() == CONTENT
    listing = http.get("/api/models", headers=admin).json()
    assert {"folder": "checkpoints", "name": "api-fetched.safetensors", "size": len(CONTENT)} in listing["stored"]
    assert next(a for a in listing["apps"] if a["slug"] == slug)["missing"] == 0
    again = http.post(f"/api/apps/{slug}/models/fetch", headers=admin).json()
    assert again["files"] == []  # nothing missing: nothing to fetch


def test_a_file_without_source_fails_with_where_to_put_it(http: httpx.Client, admin: dict[str, str]) -> None:
    slug = publish(http, admin, "by-hand.safetensors", {})
    job = wait_for(http, admin, http.post(f"/api/apps/{slug}/models/fetch", headers=admin).json()["id"])
    assert job["failed"] and "put it in models/checkpoints/by-hand.safetensors" in job["files"][0]["error"]


def test_the_cli_fetches_an_apps_models_by_its_slug(http: httpx.Client, admin: dict[str, str], server: AppServer,
                                                    hub: HubServer, tmp_path: Path) -> None:
    slug = publish(http, admin, "cli-fetched.safetensors",
                   {"cli-fetched.safetensors": "hf://owner/models/weights.safetensors"})
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HF_")}, "HF_ENDPOINT": hub.url,
           "HF_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "launch.py", "--data-dir", str(server.data_dir), "models", "pull", slug],
                            cwd=REPO, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (server.data_dir / "comfyui/models/checkpoints/cli-fetched.safetensors").read_bytes() == CONTENT
    listed = subprocess.run([sys.executable, "launch.py", "--data-dir", str(server.data_dir), "models", "list"],
                            cwd=REPO, capture_output=True, text=True, env=env, timeout=120).stdout
    assert f"App {slug}: 1 model file(s), all present" in listed


def test_models_routes_need_an_admin_key(http: httpx.Client, runner: dict[str, str]) -> None:
    assert http.get("/api/models").status_code == 401
    assert http.get("/api/models", headers=runner).status_code == 403
    assert http.get("/api/models/fetches/nope", headers=runner).status_code == 403


def test_unknown_app_and_job_are_404(http: httpx.Client, admin: dict[str, str]) -> None:
    assert http.post("/api/apps/no-such-app/models/fetch", headers=admin).status_code == 404
    assert http.get("/api/models/fetches/nope", headers=admin).status_code == 404


def test_the_routes_are_typed_in_openapi(http: httpx.Client) -> None:
    schema = http.get("/openapi.json").json()
    fetch = schema["paths"]["/api/apps/{slug}/models/fetch"]["post"]["responses"]["202"]
    assert fetch["content"]["application/json"]["schema"]["$ref"].endswith("/FetchJobOut")
    assert "FileFetchOut" in schema["components"]["schemas"]


def test_a_fetch_in_progress_shows_its_bytes_and_is_not_started_twice(http: httpx.Client, admin: dict[str, str],
                                                                     hub: HubServer) -> None:
    slug = publish(http, admin, "slow.safetensors", {"slow.safetensors": "hf://owner/models/weights.safetensors"})
    hub.bytes_per_s = 4 * 1024 * 1024  # about 3 s for the file
    try:
        first = http.post(f"/api/apps/{slug}/models/fetch", headers=admin).json()
        second = http.post(f"/api/apps/{slug}/models/fetch", headers=admin).json()
        assert second["id"] == first["id"]  # the running job, not a second download of the same file
        seen = []
        while not (job := http.get(f"/api/models/fetches/{first['id']}", headers=admin).json())["finished"]:
            seen.append(job["files"][0]["done"])
            time.sleep(0.2)
    finally:
        hub.bytes_per_s = None
    assert job["files"][0]["state"] == "fetched"
    assert any(0 < done < len(CONTENT) for done in seen)  # progress was visible on the way
