"""Login and the Deploy tab in a real browser (Debian's chromium, headless), against the real app process started
with `--auth` and without Modal or RunPod credentials (an empty HOME, no MODAL_TOKEN_*, no RUNPOD_API_KEY).
Screenshots land in test-output/screenshots/: look at them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.prompts import shipped
from tests.support.server import AppServer

pytest.importorskip("playwright")
from tests.support.browser import CHROMIUM, chromium

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs /usr/bin/chromium (make test installs it)")
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
USER, PASSWORD = "ada", "s3cret-pass"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine_url: str) -> Iterator[AppServer]:
    home = tmp_path_factory.mktemp("empty-home")  # no ~/.modal.toml
    app = AppServer(tmp_path_factory.mktemp("auth-ui"), comfyui_url=engine_url, extra=("--auth", f"{USER}:{PASSWORD}"),
                    env={"HOME": str(home), "MODAL_TOKEN_ID": None, "MODAL_TOKEN_SECRET": None,
                         "RUNPOD_API_KEY": None}).start()
    yield app
    app.stop()


@pytest.fixture(scope="module")
def private_app(server: AppServer, admin: dict[str, str]) -> str:
    slug = f"private-{uuid.uuid4().hex[:6]}"
    response = httpx.post(f"{server.url}/api/apps", headers=admin, trust_env=False, timeout=60, json={
        "name": "Private invert", "slug": slug, "workflow": shipped("demo_invert.json"), "public": False,
        "inputs": [{"node": "1", "input": "color", "name": "color"}]})
    assert response.status_code == 201, response.text
    return slug


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as context:
        yield context


def _log_in(page: Any, server: AppServer, *, password: str = PASSWORD, key: str = "") -> None:
    page.wait_for_selector("form[action='/login']")
    if key:
        page.fill("input[name=key]", key)
    else:
        page.fill("input[name=user]", USER)
        page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def test_login_guards_the_studio_and_a_private_form_records_the_visitors_key(
        server: AppServer, browser: Any, admin: dict[str, str], private_app: str) -> None:
    page = browser.new_page()
    page.goto(f"{server.url}/logout")
    page.goto(f"{server.url}/studio/")
    assert "/login" in page.url
    _log_in(page, server, password="wrong")
    page.wait_for_selector(".error:text('Wrong user, password or API key.')")
    page.screenshot(path=str(SHOTS / "login-wrong-password.png"), full_page=True)
    _log_in(page, server)
    page.wait_for_selector("#workflow-file", timeout=30_000)
    assert page.url.endswith("/studio/")

    # A visitor with an (ordinary) API key: the private form asks for the login, then runs.
    key = server.create_key("visitor")
    page.goto(f"{server.url}/logout")
    page.goto(f"{server.url}/apps/{private_app}/")
    assert "/login" in page.url
    _log_in(page, server, key=key)
    page.wait_for_selector("#run-button", timeout=30_000)
    page.click("#run-button")
    page.wait_for_selector("#run-status :text('Done')", timeout=60_000)
    # The run is the visitor's: their key's history (GET /api/runs filters by key) holds it.
    mine = httpx.get(f"{server.url}/api/runs", headers={"Authorization": f"Bearer {key}"}, trust_env=False).json()
    assert [(r["app"], r["status"]) for r in mine["runs"]] == [(private_app, "succeeded")]
    everyone = httpx.get(f"{server.url}/api/runs", headers=admin, trust_env=False).json()["runs"]
    assert mine["runs"][0]["id"] in {r["id"] for r in everyone}


def test_deploy_tab_settings_cost_files_and_a_clear_error_without_credentials(
        server: AppServer, browser: Any, admin: dict[str, str], private_app: str) -> None:
    page = browser.new_page()
    page.goto(f"{server.url}/logout")
    page.goto(f"{server.url}/studio/")
    _log_in(page, server)
    page.wait_for_selector("#workflow-file", timeout=30_000)
    page.click("button[role=tab]:has-text('Deploy')")
    page.wait_for_function(f"document.querySelector('#deploy-app input').value.includes('{private_app}')",
                           timeout=15_000)
    page.wait_for_selector("#deploy-credentials :text('No Modal credentials')")
    body = page.inner_text("#tab-deploy")
    assert "Containers kept running even with no traffic" in body  # a setting's help
    assert "Each warm container costs its GPU's hourly price" in body  # and its cost
    assert "$0 while idle" in page.inner_text("#deploy-cost")

    page.fill("#deploy-min_containers input", "1")  # a warm L4: $0.80/h around the clock
    page.keyboard.press("Tab")
    page.wait_for_selector("#deploy-cost :text('$584.00')")
    page.click("#deploy-gpu input")
    page.click("[role=option]:has-text('T4')")
    page.wait_for_selector("#deploy-cost :text('$430.70')")  # 0.59 x 730 h

    page.click("#deploy-show-files")
    page.wait_for_selector("#deploy-files-note :text('modal_app.py')", timeout=15_000)
    source = _code(page, "#deploy-files")
    assert 'gpu="T4"' in source and "min_containers=1," in source, source[:2000]
    page.screenshot(path=str(SHOTS / "studio-deploy-files.png"), full_page=True)

    page.fill("#deploy-scaledown_window input", "1")  # outside Modal's 2-3600 s: the service says so
    page.keyboard.press("Tab")
    page.wait_for_selector("#deploy-problems :text('scaledown_window')")
    assert "2-3600" in page.inner_text("#deploy-problems")
    page.fill("#deploy-scaledown_window input", "300")
    page.keyboard.press("Tab")
    page.wait_for_function("!document.querySelector('#deploy-problems').innerText.includes('scaledown')")

    started = time.monotonic()
    page.click("#deploy-button")
    page.wait_for_selector("#deploy-status :text('no way into Modal')", timeout=10_000)
    assert time.monotonic() - started < 10
    assert "modal token new" in page.inner_text("#deploy-status")
    page.screenshot(path=str(SHOTS / "studio-deploy-no-credentials.png"), full_page=True)

    # RunPod: its own settings, files (Dockerfile, handler.py) and, without RUNPOD_API_KEY, a clear error.
    page.click("#deploy-target label:has-text('RunPod')")
    page.wait_for_selector("#deploy-credentials :text('No RUNPOD_API_KEY')")
    page.wait_for_selector("#deploy-runpod-max_workers", state="visible")
    page.click("#deploy-show-files")
    page.wait_for_selector("#deploy-files-note :text('Dockerfile')", timeout=15_000)
    assert "FROM " in _code(page, "#deploy-files-dockerfile")
    assert "runpod.container.handler" in _code(page, "#deploy-files-handler")
    page.fill("#deploy-runpod-image :is(input, textarea)", "docker.io/me/worker:v1")
    page.click("#deploy-button")
    page.wait_for_selector("#deploy-status :text('Not deployed to RunPod')", timeout=10_000)
    assert "RUNPOD_API_KEY" in page.inner_text("#deploy-status")
    page.screenshot(path=str(SHOTS / "studio-deploy-runpod-no-key.png"), full_page=True)
    listed = httpx.get(f"{server.url}/api/apps/{private_app}/deployments", headers=admin, trust_env=False)
    assert listed.json() == []  # nothing recorded


def _code(page: Any, selector: str) -> str:
    """The whole text of a gr.Code (CodeMirror draws only the lines in view)."""
    return page.evaluate(f"""() => {{
        const tile = document.querySelector('{selector} .cm-content').cmTile;  // CodeMirror 6's own handle
        return tile.root.view.state.doc.toString();
    }}""")
