"""File > Publish… in the real ComfyUI editor, in headless chromium: the app installs its extension into the engine
it manages, the editor sends the open graph, and the studio's Publish tab opens with it, App Mode's inputs ticked.
With --auth on, as a user who shares the studio would run it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.editor.drafts import DraftStore
from tests.support.server import AppServer
from tests.support.templates import template

pytest.importorskip("playwright")
from tests.support.browser import CHROMIUM, chromium

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs /usr/bin/chromium (make test installs it)")
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
TEMPLATE = "image2image.json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    # An engine of its own: the app installs the extension into the engines it manages, as they start.
    app = AppServer(tmp_path_factory.mktemp("editor"), comfyui_url=None, extra=("--auth", "ann:secret"))
    app.start(timeout=240)
    # The editor's settings as a returning user has them: no first-run template browser, no missing-model dialog.
    settings = app.data_dir / "comfyui" / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"Comfy.TutorialCompleted": True, "Comfy.Workflow.ShowMissingModelsWarning": False}))
    yield app
    app.stop()


@pytest.fixture(scope="module")
def engine(server: AppServer) -> str:
    url: str = server.engines()[0]["url"]
    return url.rstrip("/")


def template_with_app_mode() -> dict[str, Any]:
    """A template the engine ships, with App Mode markings (frontend 1.58 writes them; this editor keeps them)."""
    workflow = template(TEMPLATE)
    sampler = next(node for node in workflow["nodes"] if node["type"] == "KSampler")
    prompt = next(node for node in workflow["nodes"] if node["type"] == "CLIPTextEncode")
    workflow.setdefault("extra", {})["linearData"] = {"inputs": [[sampler["id"], "denoise"], [prompt["id"], "text"]],
                                                      "outputs": []}
    return workflow


def log_in(page: Any, server: AppServer, then: str) -> None:
    page.goto(f"{server.url}/login?next={then}")
    page.fill("input[name=user]", "ann")
    page.fill("input[name=password]", "secret")
    page.click("button[type=submit]")


def open_editor_with(page: Any, engine: str, workflow: dict[str, Any]) -> None:
    page.wait_for_url(f"{engine}/**", timeout=30_000)
    page.wait_for_function("window.app && window.app.graph && window.app.vueAppReady !== false", timeout=120_000)
    page.evaluate("([workflow, name]) => app.loadGraphData(workflow, true, true, name)", [workflow, TEMPLATE])


def press_publish(page: Any) -> None:
    page.click(".comfy-menu-button-wrapper")
    page.get_by_role("menuitem", name="File").hover()
    page.get_by_role("menuitem", name="Publish…").click()


def test_the_engine_lists_the_extensions_script(server: AppServer, engine: str) -> None:
    scripts = httpx.get(f"{engine}/extensions", trust_env=False).json()
    ours = [script for script in scripts if "comfy_publisher" in script]
    assert ours == ["/extensions/comfy_publisher/publish.js"]
    config = httpx.get(f"{engine}/extensions/comfy_publisher/publisher.json", trust_env=False).json()
    assert config == {"app_url": server.url}


def test_publish_in_the_editor_opens_the_studio_with_app_modes_inputs_ticked(server: AppServer, engine: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        page = browser.new_page()
        log_in(page, server, "/studio/")
        page.wait_for_selector("#studio-links")
        with browser.expect_page() as opened:
            page.click("#studio-links a:text('Open the ComfyUI editor')")  # the studio's own link
        editor = opened.value
        open_editor_with(editor, engine, template_with_app_mode())
        assert editor.evaluate("app.graph.extra.linearData.inputs.length") == 2
        with browser.expect_page() as opened:
            press_publish(editor)
        studio = opened.value
        studio.wait_for_selector("#workflow-summary :text('From the ComfyUI editor')", timeout=60_000)
        assert studio.url.startswith(f"{server.url}/studio/?draft=")
        summary = studio.inner_text("#workflow-summary")
        assert "App Mode chose 2 input(s)" in summary
        assert "from hf://Comfy-Org/stable-diffusion-v1-5-archive/" in summary  # the file's properties.models
        assert "queues this graph otherwise" not in summary  # our conversion is what the editor sent as its prompt
        sent = DraftStore(server.data_dir / "editor-drafts").load(studio.url.split("draft=", 1)[1])
        assert sent is not None and sent.prompt is not None
        assert sorted(node["class_type"] for node in sent.prompt.values()).count("KSampler") == 1
        rows = "[...document.querySelectorAll('#inputs-table .virtual-row')]"  # Gradio's dataframe: a grid of divs
        studio.wait_for_function(f"{rows}.length > 2")
        ticked = studio.evaluate(f"""{rows}
            .filter(row => row.querySelector('[data-col="0"] input[type=checkbox]').checked)
            .map(row => row.querySelector('[data-col="1"]').innerText.trim())""")
        assert ticked == ["KSampler denoise", "Prompt"]  # App Mode's two, in its order, and no others
        assert studio.input_value("#app-name textarea, #app-name input") == "Image2image"
        studio.screenshot(path=str(SHOTS / "editor-publish-studio.png"), full_page=True)


def test_publish_without_the_studio_login_says_to_log_in(server: AppServer, engine: str) -> None:
    with chromium() as browser:
        editor = browser.new_page()
        editor.goto(engine)
        open_editor_with(editor, engine, template_with_app_mode())
        with browser.expect_page() as opened:
            press_publish(editor)
        refusal = opened.value
        refusal.wait_for_selector("h1:text('Log in first')", timeout=30_000)
        assert "choose File › Publish… in the ComfyUI editor again" in refusal.inner_text("body")
        refusal.screenshot(path=str(SHOTS / "editor-publish-login.png"))


def test_a_studio_link_to_a_draft_that_is_gone_says_what_to_do(server: AppServer) -> None:
    with chromium() as browser:
        page = browser.new_page()
        log_in(page, server, f"/studio/%3Fdraft%3D{'x' * 24}")
        page.wait_for_selector("#publish-error :text('choose File › Publish… in the ComfyUI editor again')",
                               timeout=30_000)


def test_without_the_apps_address_the_editor_says_how_to_set_it(server: AppServer, engine: str) -> None:
    config = server.data_dir / "comfyui" / "custom_nodes" / "comfy_publisher" / "web" / "publisher.json"
    saved = config.read_text()
    config.unlink()  # as after a copy of the folder made by hand
    try:
        with chromium() as browser:
            editor = browser.new_page()
            editor.goto(engine)
            open_editor_with(editor, engine, template_with_app_mode())
            pages = len(browser.pages)
            press_publish(editor)
            editor.wait_for_selector(".p-toast-message :text('Publish… failed')", timeout=30_000)
            assert "Settings › Comfy Publisher" in editor.inner_text(".p-toast-message")
            editor.wait_for_timeout(500)
            assert len(browser.pages) == pages  # the tab opened for the studio is closed again
    finally:
        config.write_text(saved)
