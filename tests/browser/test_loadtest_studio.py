"""The studio's Load tests tab in a real browser (Debian's chromium, headless) against the real app process and
engine: a short load test of the model-free demo from the tab, its live progress, result and plots, the list of
reports, two reports side by side, Stop, the downloads, and the API key minted for each test revoked after it.
Screenshots land in the test's tmp dir: look at them."""

from __future__ import annotations

import json
import re
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
SLUG = "demo-load"
TOKEN = re.compile(r"cpk_[A-Za-z0-9_-]{16,}")  # an API key (crud_keys.TOKEN_PREFIX and its random part)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine_url: str) -> Iterator[AppServer]:
    app = AppServer(tmp_path_factory.mktemp("loadtest-ui"), comfyui_url=engine_url).start()
    yield app
    app.stop()


@pytest.fixture(scope="module")
def demo(server: AppServer, admin: dict[str, str]) -> str:
    response = httpx.post(f"{server.url}/api/apps", headers=admin, trust_env=False, timeout=60, json={
        "name": "Demo under load", "slug": SLUG, "workflow": shipped("demo_invert.json"), "public": False,
        "inputs": [{"node": "1", "input": "color", "name": "color"}]})
    assert response.status_code == 201, response.text
    return SLUG


def _report(server: AppServer, report_id: str) -> dict[str, Any]:
    return json.loads((server.data_dir / "loadtests" / report_id / "report.json").read_text())


def _set(page: Any, elem_id: str, value: str) -> None:
    page.fill(f"#{elem_id} input", value)
    page.press(f"#{elem_id} input", "Tab")


def _load_test(page: Any, *, users: int, duration: int) -> str:
    """Start a load test from the tab and wait for its result; returns the status line."""
    _set(page, "loadtest-users", str(users))
    _set(page, "loadtest-spawn-rate", "10")
    _set(page, "loadtest-duration", str(duration))
    _set(page, "loadtest-think-min", "0.1")
    _set(page, "loadtest-think-max", "0.5")
    page.click("#loadtest-start")
    page.wait_for_function("/^[✓✗■] Load test [0-9]+/.test(document.querySelector('#loadtest-status').innerText)",
                           timeout=90_000)
    status = page.inner_text("#loadtest-status")
    assert status.startswith("✓"), status
    return status


def _choose(page: Any, elem_id: str, label_part: str) -> None:
    page.click(f"#{elem_id} input")
    page.click(f"[role=option]:has-text('{label_part}')")


def _images(page: Any, selector: str) -> list[int]:
    """The natural widths of the plots' images, once they have loaded."""
    images = f"[...document.querySelectorAll(\"{selector} img\")]"
    page.wait_for_function(f"{images}.length > 0 && {images}.every(i => i.complete && i.naturalWidth > 0)",
                           timeout=20_000)
    return page.eval_on_selector_all(f"{selector} img", "imgs => imgs.map(i => i.naturalWidth)")


def test_a_load_test_from_the_studio_then_two_reports_side_by_side(server: AppServer, demo: str,
                                                                   admin: dict[str, str], tmp_path: Path) -> None:
    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{server.url}/studio/")
        page.click("button[role=tab]:has-text('Load tests')")
        page.wait_for_function(f"document.querySelector('#loadtest-app input').value.includes('{demo}')",
                               timeout=20_000)
        _set(page, "loadtest-users", "2")
        _set(page, "loadtest-duration", "600000")  # past the limit: refused at once, with the limit named
        page.click("#loadtest-start")
        page.wait_for_selector("#loadtest-status :text('✗')", timeout=20_000)
        refused = page.inner_text("#loadtest-status")
        assert "Duration" in refused and "3600" in refused and "--duration" not in refused

        first = _load_test(page, users=2, duration=5)
        assert "requests" in first
        log_lines = page.input_value("#loadtest-log textarea").splitlines()
        assert log_lines and all("users" in line and "requests" in line for line in log_lines)
        page.wait_for_selector("#loadtest-numbers-a :text('Queue wait')", timeout=20_000)
        numbers = page.inner_text("#loadtest-numbers-a")
        assert all(row in numbers for row in ("Total", "Queue wait", "Execution", "runs/min"))
        widths = _images(page, "[id^=loadtest-plot-]")
        assert len(widths) == len(_report(server, "0001")["plots"]) >= 3 and min(widths) > 100
        assert demo in page.inner_text("#loadtest-reports")
        page.screenshot(path=str(tmp_path / "loadtest-result.png"), full_page=True)

        # The locustfile, exported for people who run Locust themselves.
        with page.expect_download() as download:
            page.click("#loadtest-locustfile")
        locustfile = Path(download.value.path()).read_text()
        assert "HttpUser" in locustfile and not TOKEN.search(locustfile)

        second = _load_test(page, users=1, duration=3)
        assert second != first
        listed = page.inner_text("#loadtest-reports")
        assert "0001" in listed and "0002" in listed
        _choose(page, "loadtest-compare", "0001")
        page.wait_for_selector("#loadtest-comparison table", timeout=20_000)
        comparison = page.inner_text("#loadtest-comparison")
        assert "0001 vs 0002" in comparison and "Total p95 s" in comparison
        assert page.is_visible("#loadtest-numbers-b") and "Total" in page.inner_text("#loadtest-numbers-b")
        # The same plot of each report side by side: the shown one (0002) left, the other right.
        assert _images(page, "#loadtest-plot-0-a") and _images(page, "#loadtest-plot-0-b")
        assert "0002 · latency" in page.inner_text("#loadtest-plot-0-a")
        assert "0001 · latency" in page.inner_text("#loadtest-plot-0-b")
        page.screenshot(path=str(tmp_path / "loadtest-side-by-side.png"), full_page=True)

        # A test of the app's Modal deployment: it has none, and the tab says how to deploy it.
        page.click("#loadtest-target label:has-text('modal')")
        page.click("#loadtest-start")
        page.wait_for_function("/^[✓✗■] Load test [0-9]+/.test(document.querySelector('#loadtest-status').innerText)",
                               timeout=30_000)
        refused = page.inner_text("#loadtest-status")
        assert refused.startswith("✗ Load test 0003 did not run") and "no live Modal deployment" in refused
        assert "Deploy it first" in refused and "log has the details" not in refused
        page.screenshot(path=str(tmp_path / "loadtest-modal-refused.png"))
        page.click("#loadtest-target label:has-text('local')")

        # Stop: Locust ends early and no report is kept.
        _set(page, "loadtest-users", "1")
        _set(page, "loadtest-duration", "300")
        page.click("#loadtest-start")
        page.wait_for_function("document.querySelector('#loadtest-status').innerText.includes('Load test 0003') && "
                               "document.querySelector('#loadtest-log textarea').value.includes('requests')",
                               timeout=30_000)
        assert page.inner_text("#loadtest-status").startswith("▶ Load test 0003")
        page.screenshot(path=str(tmp_path / "loadtest-running.png"))
        # Another page of the studio sees it running, and may not start a second (it would measure the first).
        other = browser.new_page()
        other.goto(f"{server.url}/studio/")
        other.click("button[role=tab]:has-text('Load tests')")
        other.wait_for_selector("#loadtest-status :text('is running')", timeout=20_000)
        other.wait_for_function("document.querySelector('#loadtest-app input').value.includes('demo-load')")
        other.click("#loadtest-start")
        other.wait_for_selector("#loadtest-status :text('wait for its report or stop it first')", timeout=20_000)
        assert "Load test 0003" in other.inner_text("#loadtest-status")
        other.close()
        page.click("#loadtest-stop")
        page.wait_for_selector("#loadtest-status :text('stopped')", timeout=30_000)
        page.screenshot(path=str(tmp_path / "loadtest-stopped.png"), full_page=True)

    folders = sorted(p.name for p in (server.data_dir / "loadtests").iterdir())
    assert folders == ["0001", "0002"]  # the stopped test left nothing
    for folder in folders:
        report = _report(server, folder)
        assert report["id"] == folder  # the downloaded report.json names the test as the tab does
        assert report["slug"] == demo and report["requests"] == report["successes"] + sum(
            report["failures"].values())
    # Each test ran with a key of its own, revoked when it ended, and written nowhere.
    keys = httpx.get(f"{server.url}/api/keys", headers=admin, trust_env=False, timeout=10).json()
    minted = [k for k in keys if k["name"].startswith("studio load test")]
    assert len(minted) == 4 and all(k["revoked_at"] for k in minted)
    # Only the Modal test's key was an admin's (the runner reads the app's deployments with it).
    assert [k["admin"] for k in minted] == [False, False, True, False]
    for path in (server.data_dir / "loadtests").rglob("*"):
        assert not path.is_file() or not TOKEN.search(path.read_text(errors="replace")), path
