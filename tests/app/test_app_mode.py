"""ComfyUI App Mode markings over HTTP and the CLI: the real app process, the real engine, a real SQLite DB."""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import Any

import httpx
import pytest

from tests.app.test_api import publish, ui_fixture
from tests.support.paths import REPO
from tests.support.server import AppServer

TXT2IMG = "ui_app_mode_txt2img.app.json"  # App Mode inputs, in an order of their own; no outputs
WITH_OUTPUTS = "ui_app_mode_outputs.app.json"  # App Mode inputs and an output: the preview, not the save node


@pytest.fixture(scope="module")
def server(shared_app: AppServer) -> AppServer:
    return shared_app


def _analyze(http: httpx.Client, admin: dict[str, str], workflow: dict[str, Any]) -> httpx.Response:
    return http.post("/api/workflows/analyze", json={"workflow": workflow}, headers=admin)


def test_analyze_marks_exactly_the_app_mode_inputs_in_order(http: httpx.Client, admin: dict[str, str]) -> None:
    found = _analyze(http, admin, ui_fixture(TXT2IMG)).json()
    suggested = [(i["node"], i["input"]) for i in found["inputs"] if i["suggested"]]
    assert suggested == [("6", "text"), ("5", "width"), ("3", "steps"), ("3", "seed")]
    assert [(i["node"], i["input"]) for i in found["inputs"][:4]] == suggested  # first: the form's order
    app_mode = found["app_mode"]
    assert app_mode["linear_mode"] is True and app_mode["outputs"] == []
    assert app_mode["inputs"] == [{"node": n, "input": i} for n, i in suggested]
    assert any("control_after_generate" in p for p in app_mode["problems"])
    assert [o["node_id"] for o in found["outputs"] if o["published_by_default"]] == ["9"]


def test_analyze_publishes_exactly_the_app_mode_outputs(http: httpx.Client, admin: dict[str, str]) -> None:
    found = _analyze(http, admin, ui_fixture(WITH_OUTPUTS)).json()
    assert {o["node_id"]: o["published_by_default"] for o in found["outputs"]} == {"3": False, "7": True}
    assert found["app_mode"]["outputs"] == ["7"]


def test_publishing_without_inputs_takes_app_modes(http: httpx.Client, admin: dict[str, str]) -> None:
    response = publish(http, admin, name="App mode", slug=f"am-{uuid.uuid4().hex[:6]}",
                       workflow=ui_fixture(WITH_OUTPUTS))
    assert response.status_code == 201, response.text
    latest = response.json()["latest"]
    assert [(i["node"], i["input"]) for i in latest["inputs"]] == [("1", "height"), ("1", "color"), ("1", "width")]
    assert [o["node"] for o in latest["outputs"]] == ["7"]

    color = latest["inputs"][1]["name"]
    run = http.post(response.json()["endpoints"]["run"], json={"inputs": {color: 0}}, headers=admin,
                    timeout=60).json()
    assert run["status"] == "succeeded", run
    assert [o["node"] for o in run["outputs"]] == ["7"]


def test_inputs_given_win_over_app_mode(http: httpx.Client, admin: dict[str, str]) -> None:
    chosen = publish(http, admin, name="Chosen", slug=f"ch-{uuid.uuid4().hex[:6]}", workflow=ui_fixture(WITH_OUTPUTS),
                     inputs=[{"node": "1", "input": "batch_size"}], outputs=["3"])
    assert chosen.status_code == 201, chosen.text
    assert [i["input"] for i in chosen.json()["latest"]["inputs"]] == ["batch_size"]
    assert [o["node"] for o in chosen.json()["latest"]["outputs"]] == ["3"]
    none = publish(http, admin, name="None", slug=f"no-{uuid.uuid4().hex[:6]}", workflow=ui_fixture(WITH_OUTPUTS),
                   inputs=[])
    assert none.status_code == 201 and none.json()["latest"]["inputs"] == []


def test_a_missing_node_type_names_its_pack(http: httpx.Client, admin: dict[str, str]) -> None:
    response = _analyze(http, admin, ui_fixture("ui_missing_pack.json"))
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "provided by the node pack 'comfyui-fancy-nodes' version 1.4.2 (Comfy Registry)" in detail["message"]
    assert {m["class_type"]: m["pack"] for m in detail["missing_node_types"]} == {
        "FancyInvert": {"id": "comfyui-fancy-nodes", "version": "1.4.2", "source": "registry",
                        "pin": "comfyui-fancy-nodes@1.4.2"},
        "GitBlur": {"id": "someone/comfyui-gitblur", "version": "0a1b2c3d", "source": "github",
                    "pin": None},
    }
    refused = publish(http, admin, name="Missing", workflow=ui_fixture("ui_missing_pack.json"))
    assert refused.status_code == 422 and "comfyui-fancy-nodes" in refused.text


def test_the_cli_publishes_app_modes_inputs(server: AppServer, admin: dict[str, str], http: httpx.Client) -> None:
    key = admin["Authorization"].removeprefix("Bearer ")
    out = subprocess.run(
        [sys.executable, "launch.py", "publish", str(REPO / "tests/publisher/fixtures" / WITH_OUTPUTS),
         "--name", "CLI app mode", "--url", server.url, "--key", key],
        cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "Published CLI app mode as 'cli-app-mode' version 1" in out
    latest = http.get("/api/apps/cli-app-mode", headers=admin).json()["latest"]
    assert [i["input"] for i in latest["inputs"]] == ["height", "color", "width"]
    assert [o["node"] for o in latest["outputs"]] == ["7"]
