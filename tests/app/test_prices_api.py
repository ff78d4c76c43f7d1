"""The GPU price table through the admin API of the real app process: read, replace (dated, in the data dir),
refused when bad, back to built-in; the deploy settings and a preview's cost follow it; in the OpenAPI document."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from runtimes.modal.host.settings import GPU_PRICES
from tests.support.deployments import record_live_deployment
from tests.support.prompts import shipped
from tests.support.server import AppServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine_url: str) -> Iterator[AppServer]:
    app = AppServer(tmp_path_factory.mktemp("prices-api"), comfyui_url=engine_url,
                    env={"HOME": str(tmp_path_factory.mktemp("home"))}).start()
    yield app
    app.stop()


@pytest.fixture(scope="module")
def http(server: AppServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, trust_env=False, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def admin(server: AppServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.create_key('prices-admin', admin=True)}"}


def test_prices_are_read_replaced_and_reset_by_admins(server: AppServer, http: httpx.Client,
                                                     admin: dict[str, str]) -> None:
    saved = server.data_dir / "gpu_prices.json"
    builtin = http.get("/api/deploy/prices", headers=admin).json()
    assert builtin["builtin"] is True and builtin["usd_per_hour"] == GPU_PRICES and builtin["file"] is None
    user = {"Authorization": f"Bearer {server.create_key('prices-user')}"}
    assert http.get("/api/deploy/prices", headers=user).status_code == 403
    assert http.put("/api/deploy/prices", json={"usd_per_hour": {"T4": 1}}).status_code == 401
    put = http.put("/api/deploy/prices", headers=admin, json={"usd_per_hour": {"t4": 1.5}, "source": "my quote"})
    assert put.status_code == 200, put.text
    table = put.json()
    assert table["usd_per_hour"]["T4"] == 1.5 and table["usd_per_hour"]["L4"] == GPU_PRICES["L4"]
    assert table["checked"] == dt.date.today().isoformat() and table["builtin"] is False
    assert table["file"] == str(saved) and json.loads(saved.read_text())["source"] == "my quote"
    assert http.get("/api/deploy/prices", headers=admin).json() == table
    # The deploy settings and a preview's cost use the table in force.
    settings = http.get("/api/deploy/settings", headers=admin).json()
    assert settings["gpu_prices_usd_per_hour"]["T4"] == 1.5 and "my quote" in settings["gpu_prices_checked"]
    slug = f"demo-{uuid.uuid4().hex[:6]}"
    assert http.post("/api/apps", headers=admin, json={"name": "Demo", "slug": slug, "inputs": [],
                                                       "workflow": shipped("demo_invert.json")}).status_code == 201
    preview = http.post(f"/api/apps/{slug}/deployments/preview", headers=admin,
                        json={"settings": {"gpu": "T4", "min_containers": 2}}).json()
    assert preview["cost"]["warm_pool_hourly_usd"] == 3.0
    assert "($1.50/h per container)" in preview["files"]["modal_app.py"]
    record_live_deployment(server, slug, "http://127.0.0.1:9", settings={"gpu": "T4", "min_containers": 2})
    (listed,) = http.get(f"/api/apps/{slug}/deployments", headers=admin).json()
    assert listed["cost"]["warm_pool_hourly_usd"] == 3.0  # a deployment's cost: the table in force too
    switched = http.put(f"/api/apps/{slug}/runtime", headers=admin, json={"runtime": "modal"})
    assert switched.status_code == 200 and switched.json()["deployment"]["cost"] == listed["cost"], switched.text
    # Bad tables are refused with what to fix, and the file in force stays.
    for body, says in (({"usd_per_hour": {"GTX-1080": 1}}, "GTX-1080"), ({"usd_per_hour": {"L4": 0}}, "above 0"),
                       ({"usd_per_hour": {"L4": "cheap"}}, "L4")):
        refused = http.put("/api/deploy/prices", headers=admin, json=body)
        assert refused.status_code == 422 and says in refused.text, refused.text
    assert http.get("/api/deploy/prices", headers=admin).json() == table
    # A file broken by hand: GET says which file and what to do.
    saved.write_text("{broken")
    broken = http.get("/api/deploy/prices", headers=admin)
    assert broken.status_code == 409 and str(saved) in broken.text and "DELETE" in broken.text
    reset = http.delete("/api/deploy/prices", headers=admin)
    assert reset.status_code == 200 and reset.json()["builtin"] is True and not saved.exists()


def test_the_prices_api_is_in_the_openapi_document(http: httpx.Client) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    assert {"get", "put", "delete"} <= set(paths["/api/deploy/prices"])
