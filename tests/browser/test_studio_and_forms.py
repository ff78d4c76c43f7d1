"""The studio and the generated forms in a real browser (Debian's chromium, headless), against the real app
process and the real engine. Screenshots land in the test's output folder: look at them."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.prompts import shipped
from tests.support.server import AppServer

pytest.importorskip("playwright")
from tests.support.browser import CHROMIUM, chromium

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs /usr/bin/chromium (make test installs it)")
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


@pytest.fixture(scope="module")
def server(shared_app: AppServer) -> AppServer:
    return shared_app


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as context:
        yield context


def test_publish_the_demo_in_the_studio_then_run_its_form(server: AppServer, browser: object) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(f"{server.url}/")  # "/" leads to the studio
    page.wait_for_selector("#workflow-file")
    page.set_input_files("#workflow-file input[type=file]", "workflows/demo_invert.json")
    page.wait_for_selector("#workflow-summary :text('3 nodes')", timeout=30_000)
    assert "Blank image color" in page.inner_text("#inputs-table")
    # The preview shows the suggested inputs as form fields before anything is published.
    color = page.wait_for_selector("#input-Blank_image_color, [id^=input-blank_image_color]", timeout=15_000)
    # The test run takes the values typed into the preview.
    color.query_selector("input").fill("255")
    page.click("#test-run")
    page.wait_for_selector("#test-status :text('Test run finished')", timeout=30_000)
    assert "=255" in page.inner_text("#test-status"), page.inner_text("#test-status")
    slug = f"demo-{uuid.uuid4().hex[:6]}"
    page.fill("#app-name textarea, #app-name input", slug)
    page.fill("#app-description textarea", "Inverts a blank image of the colour you pick.")
    page.keyboard.press("Tab")
    page.screenshot(path=str(SHOTS / "studio-publish.png"), full_page=True)
    page.click("#publish-button")
    page.wait_for_selector("#publish-result :text('Published')", timeout=30_000)
    assert f"/apps/{slug}/" in page.inner_text("#publish-result")

    form = browser.new_page()  # type: ignore[attr-defined]
    form.goto(f"{server.url}/apps/{slug}/")
    form.wait_for_selector("#run-button")
    assert slug in form.inner_text("#app-title")
    form.click("#run-button")
    form.wait_for_selector("#run-status :text('Done')", timeout=60_000)
    image = form.wait_for_selector("#outputs img", timeout=10_000)
    assert image.evaluate("img => img.naturalWidth") == 64
    form.screenshot(path=str(SHOTS / "form-demo-done.png"), full_page=True)
    # The run is in the studio's history, with its inputs.
    page.click("button[role=tab]:has-text('Runs')")
    page.wait_for_function(f"document.querySelector('#runs-table').innerText.includes('{slug}')", timeout=15_000)
    assert "succeeded" in page.inner_text("#runs-table")
    page.screenshot(path=str(SHOTS / "studio-runs.png"), full_page=True)


def test_a_bad_workflow_file_says_what_is_wrong(server: AppServer, browser: object, tmp_path: Path) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(f"{server.url}/studio/")
    page.wait_for_selector("#workflow-file")
    bad = tmp_path / "not_a_workflow.json"
    bad.write_text('{"hello": [1, 2, 3]')
    page.set_input_files("#workflow-file input[type=file]", str(bad))
    error = page.wait_for_selector("#publish-error :text('cannot be published')", timeout=15_000)
    text = page.inner_text("#publish-error")
    assert "not JSON" in text and "Export (API)" in text, text
    assert error is not None
    assert page.is_disabled("#publish-button")
    page.screenshot(path=str(SHOTS / "studio-bad-file.png"), full_page=True)
    # A UI-format file with a node this engine lacks: converting it names the node.
    ui = json.loads(Path("tests/publisher/fixtures/ui_demo_invert.json").read_text())
    next(n for n in ui["nodes"] if n["id"] == 2)["type"] = "FancyInvert"
    unknown = tmp_path / "ui_unknown_node.json"
    unknown.write_text(json.dumps(ui))
    page.reload()  # a fresh drop zone
    page.wait_for_selector("#workflow-file")
    page.set_input_files("#workflow-file input[type=file]", str(unknown))
    page.wait_for_selector("#publish-error :text('cannot be published')", timeout=15_000)
    assert "node 2 (FancyInvert) is not installed on this engine" in page.inner_text("#publish-error")
    assert page.is_disabled("#publish-button")


def test_a_ui_format_file_is_converted_and_summarised(server: AppServer, browser: object) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(f"{server.url}/studio/")
    page.wait_for_selector("#workflow-file")
    page.set_input_files("#workflow-file input[type=file]", "tests/publisher/fixtures/ui_demo_invert.json")
    page.wait_for_selector("#workflow-summary :text('Converted from the UI format')", timeout=15_000)
    summary = page.inner_text("#workflow-summary")
    assert "3 nodes" in summary and "Blank image" in summary and "Reroute" not in summary, summary
    assert page.inner_text("#publish-error").strip() == ""
    page.wait_for_function("!document.querySelector('#publish-button').disabled", timeout=15_000)
    page.screenshot(path=str(SHOTS / "studio-ui-format.png"), full_page=True)


def test_the_progress_bar_moves_on_txt2img(server: AppServer, browser: object, sd15_checkpoint: str) -> None:
    admin = {"Authorization": f"Bearer {server.create_key('ui-admin', admin=True)}"}
    workflow = shipped("txt2img_sd15.json")
    workflow["4"]["inputs"]["ckpt_name"] = sd15_checkpoint
    workflow["5"]["inputs"].update(width=64, height=64)
    slug = f"t2i-{uuid.uuid4().hex[:6]}"
    published = httpx.post(f"{server.url}/api/apps", headers=admin, trust_env=False, timeout=60, json={
        "name": "Tiny txt2img", "slug": slug, "workflow": workflow, "public": True,
        "inputs": [{"node": "6", "input": "text", "name": "prompt"}, {"node": "3", "input": "seed", "name": "seed"},
                   {"node": "3", "input": "steps", "name": "steps", "default": 12}]})
    assert published.status_code == 201, published.text
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(f"{server.url}/apps/{slug}/")  # mounted while the server runs (published over the API)
    page.wait_for_selector("#run-button")
    page.click("#run-button")
    seen: set[str] = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "Done" not in page.inner_text("#run-status"):
        seen.update(re.findall(r"step \d+/12", page.inner_text("body")))
        if len(seen) == 3:
            page.screenshot(path=str(SHOTS / "form-txt2img-progress.png"), full_page=True)
        time.sleep(0.05)
    assert "Done" in page.inner_text("#run-status"), page.inner_text("#run-status")
    assert len(seen) >= 2, f"the bar showed {seen}: it should move step by step"
    page.wait_for_selector("#outputs img", timeout=10_000)
    assert re.search(r"seed \d+", page.inner_text("#run-status"))  # the seed drawn is shown
