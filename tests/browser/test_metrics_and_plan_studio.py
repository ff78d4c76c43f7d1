"""The studio's Metrics tab and the Deploy tab's plan in a real browser (Debian's chromium, headless), against the
real app process and engine running the model-free demo. Screenshots land in the test's tmp folder: look at them."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtimes.modal.host.settings import GPU_PRICES
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
    # The timer ticks only while the tab is open: it refreshes by itself (the next tick's answer, within two
    # periods: then the charts have a line), and stops on another tab.
    calls: list[str] = []
    page.on("request", lambda request: calls.append(request.url) if "/gradio_api/" in request.url else None)
    page.wait_for_event("response", lambda response: "/gradio_api/" in response.url, timeout=4500)
    assert calls, "the Metrics tab did not refresh by itself"
    page.screenshot(path=str(tmp_path / "studio-metrics.png"), full_page=True)
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


def plan_cost_per_min(page: Any, prices: str) -> float:
    """Plan the form's GPU at a fixed exec time, for speed; the pick's $/min, once the pick names `prices`."""
    page.fill("#plan-exec input", "3.5")
    page.fill("#plan-target input", "0")
    page.fill("#plan-budget input", "1000")  # the fastest setting: the same one at any price
    page.click("#plan-run")
    page.wait_for_selector(f"#plan-pick :text('{prices}')", timeout=30_000)
    pick = page.inner_text("#plan-pick")
    assert "✓" in pick, pick
    return float(re.search(r"\$([\d.]+)/min", pick).group(1))  # type: ignore[union-attr]


def edit_price(page: Any, gpu: str, price: str) -> None:
    """Type a price into the GPU's row of Gradio's dataframe (a grid of divs, cells by row and column)."""
    cell = page.locator(f"#prices-table [data-testid=cell-{list(GPU_PRICES).index(gpu)}-1]")
    cell.dblclick()
    editor = cell.locator("input, textarea").first
    editor.fill(price)
    editor.press("Enter")


def test_the_deploy_tabs_gpu_prices_are_editable_with_their_date(server: AppServer, browser: Any,
                                                                demo: tuple[str, dict[str, str]],
                                                                tmp_path: Path) -> None:
    today = dt.date.today().isoformat()
    saved = server.data_dir / "gpu_prices.json"
    page = browser.new_page()
    page.goto(f"{server.url}/studio/")
    page.click("button[role=tab]:has-text('Deploy')")
    page.wait_for_selector("#deploy-cost :text('built-in, checked')", timeout=20_000)
    assert "$0.80/h" in page.inner_text("#deploy-cost")  # the form's L4, at the built-in price
    page.click("#deploy-plan >> text=Plan: cost vs latency")
    # The app's measured exec time fills the field when the app is chosen: wait for it, or it could land after
    # the exec time typed below and plan another workload.
    page.wait_for_selector("#plan-history :text('succeeded run(s)')", timeout=20_000)
    builtin_cost = plan_cost_per_min(page, "built-in, checked")
    page.click("#deploy-prices >> text=GPU prices (USD per hour)")
    page.wait_for_selector("#prices-info :text('Built-in prices')", timeout=10_000)
    # L4 at three times its price: saved, dated today, and the cost card, the GPU choices and the plan follow.
    edit_price(page, "L4", "2.4")
    page.click("#prices-save")
    page.wait_for_selector("#prices-status :text('Saved')", timeout=10_000)
    written = json.loads(saved.read_text())
    assert written["checked"] == today and written["source"] == "edited in the studio"
    assert written["usd_per_hour"]["L4"] == 2.4 and written["usd_per_hour"]["T4"] == 0.59
    assert f"checked {today}" in page.inner_text("#prices-info")
    page.wait_for_selector("#deploy-cost :text('$2.40/h')", timeout=10_000)
    assert f"yours, checked {today}" in page.inner_text("#deploy-cost")
    page.click("#deploy-gpu input")
    assert page.locator("[role=option]:has-text('L4 · $2.40/h')").count() == 1
    page.keyboard.press("Escape")
    edited_cost = plan_cost_per_min(page, f"yours, checked {today}")
    assert edited_cost == pytest.approx(builtin_cost * 3, rel=0.01)  # the same pick, at three times the price
    page.locator("#deploy-prices").scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "studio-deploy-prices-saved.png"), full_page=True)
    # A bad price is refused, naming the GPU; the file in force stays.
    edit_price(page, "T4", "-1")
    page.click("#prices-save")
    page.wait_for_selector("#prices-status :text('Not saved')", timeout=10_000)
    assert "T4" in page.inner_text("#prices-status") and json.loads(saved.read_text()) == written
    # A file broken by hand: the tab says which file and what is wrong, and the plan refuses.
    saved.write_text('{"checked": "2026-01-01", "source": "x", "usd_per_hour": {"L4": "cheap"}}')
    page.click("button[role=tab]:has-text('Runs')")
    page.click("button[role=tab]:has-text('Deploy')")
    page.wait_for_selector("#prices-info :text('cannot be used')", timeout=10_000)
    assert str(saved) in page.inner_text("#prices-info") and "L4" in page.inner_text("#prices-info")
    page.wait_for_selector("#deploy-cost :text('built-in, checked')", timeout=10_000)  # what is in force now
    page.click("#plan-run")
    page.wait_for_selector("#plan-pick :text('Cannot plan')", timeout=30_000)
    assert str(saved) in page.inner_text("#plan-pick")
    page.locator("#deploy-prices").scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "studio-deploy-prices-broken.png"), full_page=True)
    # Back to the built-in prices: the file is gone and the cost card says so.
    page.click("#prices-reset")
    page.wait_for_selector("#prices-info :text('Built-in prices')", timeout=10_000)
    assert not saved.exists()
    page.wait_for_selector("#deploy-cost :text('$0.80/h')", timeout=10_000)
    assert "built-in, checked" in page.inner_text("#deploy-cost")
