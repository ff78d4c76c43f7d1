"""The studio's Publish tab with a file saved in ComfyUI's App Mode, in a real browser against the real app."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.server import AppServer

pytest.importorskip("playwright")
from tests.support.browser import CHROMIUM, chromium

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs /usr/bin/chromium (make test installs it)")
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
APP_MODE_FILE = "tests/publisher/fixtures/ui_app_mode_outputs.app.json"


@pytest.fixture(scope="module")
def server(shared_app: AppServer) -> AppServer:
    return shared_app


def test_app_modes_inputs_are_ticked_in_order_and_published_with_its_outputs(server: AppServer) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{server.url}/studio/")
        page.wait_for_selector("#workflow-file")
        page.set_input_files("#workflow-file input[type=file]", APP_MODE_FILE)
        page.wait_for_selector("#workflow-summary :text('App Mode chose 3 input(s)')", timeout=30_000)
        assert "published: nodes 7" in page.inner_text("#workflow-summary")
        slug = f"app-mode-{uuid.uuid4().hex[:6]}"
        page.fill("#app-name textarea, #app-name input", slug)
        page.keyboard.press("Tab")
        page.wait_for_function("!document.querySelector('#publish-button').disabled", timeout=15_000)
        page.screenshot(path=str(SHOTS / "studio-app-mode.png"), full_page=True)
        page.click("#publish-button")
        page.wait_for_selector("#publish-result :text('Published')", timeout=30_000)
    latest = httpx.get(f"{server.url}/api/apps/{slug}", trust_env=False).json()["latest"]
    assert [(i["node"], i["input"]) for i in latest["inputs"]] == [("1", "height"), ("1", "color"), ("1", "width")]
    assert [o["node"] for o in latest["outputs"]] == ["7"]
