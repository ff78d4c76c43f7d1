"""The studio's Metrics tab and the Deploy tab's plan in a real browser (Debian's chromium, headless), against the
real app process and engine running the model-free demo. Screenshots land in the test's tmp folder: look at them."""

from __future__ import annotations

import re
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


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine_url: str) -> Iterator[AppServer]:
    app = AppServer(tmp_path_factory.mktemp("metrics-ui"), comfyui_url=engine_url,
                    env={"HOME": str(tmp_path_factory.mktemp("home"))}).start()
    yield app
    app.stop()


@pytest.fixture(scope="module")
def demo(server: AppServer) -> tuple[str, dict[str, str]]:
    """The model-free demo, published and run three times."""
    admin = {"Authorization": f"Bearer {server.create_key('ui-admin', admin=True)}"}
    slug = f"demo-{uuid.uuid4().hex[:6]}"
    with httpx.Client(base_url=server.url, trust_env=False, timeout=60) as http:
        response = http.post("/api/apps", headers=admin, json={"name": "Metrics demo", "slug": slug,
                                                               "workflow": shipped("demo_invert.json"), "inputs": []})
        assert response.status_code == 201, response.text
        for _ in range(3):
            assert http.post(f"/api/apps/{slug}/run", headers=admin, json={"inputs": {}}).json()["status"] == \
                "succeeded"
    return slug, admin


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as context:
        yield context


def test_the_metrics_tab_shows_the_runs_live_with_charts(server: AppServer, browser: Any,
                                                         demo: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    slug, admin = demo
    page = browser.new_page()
    page.goto(f"{server.url}/studio/")
    page.click("button[role=tab]:has-text('Metrics')")
    page.wait_for_function(f"document.querySelector('#metrics-runs').innerText.includes('{slug}')", timeout=20_000)
    cards = page.inner_text("#metrics-now")
    assert re.search(r"RUNS ENDED\s*3\s*3 succeeded", cards, re.I), cards
    assert re.search(r"WORKERS\s*0 busy\s*1 idle", cards, re.I), cards
    assert "ms" in cards  # the execution p50 of a demo run, in milliseconds
    gpu_present = bool(httpx.get(f"{server.url}/metrics", headers=admin, trust_env=False).text.count("_gpu_"))
    assert ("no GPU" in cards) is not gpu_present
    assert ("no GPU on this server" in page.inner_text("#metrics-no-gpu")) is not gpu_present
    # The timer refreshes the tab by itself: a fourth run shows up without a click.
    with httpx.Client(base_url=server.url, trust_env=False, timeout=60) as http:
        assert http.post(f"/api/apps/{slug}/run", headers=admin, json={"inputs": {}}).json()["status"] == "succeeded"
    page.wait_for_function("/RUNS ENDED\\s*4/i.test(document.querySelector('#metrics-now').innerText)",
                           timeout=15_000)
    for chart in ("workers", "throughput", "latency"):
        page.wait_for_selector(f"#metrics-{chart} canvas, #metrics-{chart} svg", timeout=15_000)
    page.wait_for_timeout(2500)  # one more tick: the charts have a line
    page.screenshot(path=str(tmp_path / "studio-metrics.png"), full_page=True)
    # The timer ticks only while the tab is open.
    calls: list[str] = []
    page.on("request", lambda request: calls.append(request.url) if "/gradio_api/" in request.url else None)
    page.wait_for_timeout(4500)
    assert calls, "the Metrics tab did not refresh by itself"
    page.click("button[role=tab]:has-text('Runs')")
    page.wait_for_timeout(1000)
    calls.clear()
    page.wait_for_timeout(4500)
    assert calls == [], calls


def test_the_deploy_tabs_plan_recommends_plots_and_fills_the_form(server: AppServer, browser: Any,
                                                                 demo: tuple[str, dict[str, str]],
                                                                 tmp_path: Path) -> None:
    page = browser.new_page()
    page.goto(f"{server.url}/studio/")
    page.click("button[role=tab]:has-text('Deploy')")
    page.click("#deploy-plan button:has-text('Plan: cost vs latency'), #deploy-plan >> text=Plan: cost vs latency")
    page.wait_for_selector("#plan-history :text('succeeded run(s)')", timeout=20_000)
    median = re.search(r"median ([\d.e-]+) s", page.inner_text("#plan-history")).group(1)  # type: ignore[union-attr]
    assert float(page.input_value("#plan-exec input")) == float(median)  # the demo's measured exec time
    assert "L4" in page.input_value("#deploy-gpu input")
    # A GPU-sized exec time on the form's L4, a T4 as fast and cheaper, and a target p95.
    page.fill("#plan-exec input", "3.5")
    page.fill("#plan-other-gpus textarea, #plan-other-gpus input", "T4=3.5")
    page.fill("#plan-target input", "10")
    page.click("#plan-run")
    page.wait_for_selector("#plan-pick :text('✓')", timeout=30_000)
    pick = page.inner_text("#plan-pick")
    found = re.search(r"(\S+), (\d+) input\(s\)/container, warm pool (\d+), idle (\d+) s", pick)
    assert found, pick
    gpu, inputs, warm, idle = found.groups()
    assert gpu == "T4"  # as fast as the L4 here, and cheaper
    p95 = float(re.search(r"p95 ([\d.]+) s", pick).group(1))  # type: ignore[union-attr]
    assert p95 <= 10
    page.wait_for_selector("#plan-plot img", timeout=15_000)
    page.click("#plan-use")
    page.wait_for_function("document.querySelector('#deploy-gpu input').value.startsWith('T4')", timeout=10_000)
    assert page.input_value("#deploy-max_inputs input") == inputs
    assert page.input_value("#deploy-min_containers input") == warm
    assert page.input_value("#deploy-scaledown_window input") == idle
    page.locator("#deploy-plan").scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "studio-deploy-plan.png"), full_page=True)
    # An unreachable target says why, and offers nothing to use.
    page.fill("#plan-target input", "0.5")
    page.click("#plan-run")
    page.wait_for_selector("#plan-pick :text('No setting fits')", timeout=30_000)
    assert "no setting reaches p95" in page.inner_text("#plan-pick")
    assert not page.is_visible("#plan-use")
    page.screenshot(path=str(tmp_path / "studio-deploy-plan-unreachable.png"), full_page=True)
