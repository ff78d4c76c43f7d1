"""The studio's "Fetch missing models" button, in a real browser against the real app: on the Publish tab for the
workflow being published and on the Apps tab for a published app, from a loopback server speaking the Hub's
download protocol."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.app.test_models_cli import ui_workflow
from tests.support.hub_server import HubServer
from tests.support.prompts import node_of, shipped
from tests.support.server import AppServer

pytest.importorskip("playwright")
from tests.support.browser import CHROMIUM, chromium

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs /usr/bin/chromium (make test installs it)")
CONTENT = os.urandom(3_000_000)
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


@pytest.fixture(scope="module")
def hub() -> Iterator[HubServer]:
    with HubServer() as server:
        server.add("owner/models", "sub/weights.safetensors", CONTENT)
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine_url: str, hub: HubServer) -> Iterator[AppServer]:
    data_dir = tmp_path_factory.mktemp("ui")
    app = AppServer(data_dir, comfyui_url=engine_url, extra=("--models-dir", str(data_dir / "comfyui" / "models")),
                    env=hub.app_env(tmp_path_factory.mktemp("hf"))).start()
    yield app
    app.stop()


def test_the_publish_tab_fetches_the_workflows_missing_model(server: AppServer, tmp_path: Path) -> None:
    workflow = tmp_path / "needs_a_model.json"
    workflow.write_text(json.dumps(ui_workflow(name="studio-publish.safetensors")))
    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{server.url}/studio/")
        page.wait_for_selector("#workflow-file")
        page.set_input_files("#workflow-file input[type=file]", str(workflow))
        page.wait_for_selector("#publish-models-status :text('missing')", timeout=30_000)
        page.click("#publish-models-button")
        page.wait_for_selector("#publish-models-status :text('Model files fetched')", timeout=60_000)
        assert "studio-publish.safetensors" in page.inner_text("#publish-models-status")
    assert (server.data_dir / "comfyui/models/checkpoints/studio-publish.safetensors").read_bytes() == CONTENT


def test_the_apps_tab_fetches_a_published_apps_missing_model_with_a_progress_bar(server: AppServer,
                                                                                 hub: HubServer) -> None:
    prompt = shipped("txt2img_sd15.json")
    prompt[node_of(prompt, "CheckpointLoaderSimple")]["inputs"]["ckpt_name"] = "studio-app.safetensors"
    admin = {"Authorization": f"Bearer {server.create_key('admin', admin=True)}"}
    published = httpx.post(f"{server.url}/api/apps", headers=admin, trust_env=False, timeout=60, json={
        "name": "Needs a model", "slug": "needs-a-model", "workflow": prompt,
        "model_sources": {"studio-app.safetensors": "hf://owner/models/sub/weights.safetensors"}})
    assert published.status_code == 201, published.text
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{server.url}/studio/")
        page.click("button[role=tab]:has-text('Apps')")
        page.wait_for_selector("#app-models-status :text('1 of 1 model file(s) missing')", timeout=30_000)
        hub.bytes_per_s = 1024 * 1024  # about 3 s: the bar is seen on the way
        try:
            page.click("#app-models-button")
            page.wait_for_selector("#app-models-status .progress-text, #app-models-status .progress-level",
                                   timeout=30_000)
            page.screenshot(path=str(SHOTS / "studio-fetch-models.png"), full_page=True)
            page.wait_for_selector("#app-models-status :text('Model files fetched')", timeout=60_000)
        finally:
            hub.bytes_per_s = None
    assert (server.data_dir / "comfyui/models/checkpoints/studio-app.safetensors").read_bytes() == CONTENT
