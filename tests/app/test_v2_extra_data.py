"""A Comfy API v2 job's `extra_data.api_key_comfy_org` reaches the engine's API nodes, as they send it to Comfy.org
(here a loopback stand-in that refuses every key), and is kept nowhere: not in the job, the run record or the
database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.app.test_v2_jobs import wait_terminal
from tests.support.comfy_org_api import ComfyOrgApi
from tests.support.server import AppServer

# An API node (OpenAI's DALL-E 2 through Comfy.org) and where its picture would go.
API_WORKFLOW = {"1": {"class_type": "OpenAIDalle2", "inputs": {"prompt": "a fox", "seed": 0, "size": "256x256",
                                                              "n": 1}},
                "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, api_nodes_engine_url: str) -> Iterator[AppServer]:
    app = AppServer(tmp_path_factory.mktemp("v2-extra"), comfyui_url=api_nodes_engine_url).start()
    yield app
    app.stop()


def _run(http: httpx.Client, admin: dict[str, str], api: ComfyOrgApi, body: dict[str, Any]) -> tuple[dict[str, Any],
                                                                                                       list[Any]]:
    before = len(api.calls)
    created = http.post("/api/v2/jobs", headers=admin, json=body)
    assert created.status_code == 201, created.text
    return wait_terminal(http, created.json()["urls"]["self"], admin), api.calls[before:]


def test_the_comfy_org_key_reaches_the_api_nodes_and_is_kept_nowhere(server: AppServer, http: httpx.Client,
                                                                     admin: dict[str, str],
                                                                     comfy_org_api: ComfyOrgApi) -> None:
    secret = f"comfyui-{uuid.uuid4().hex}"
    job, calls = _run(http, admin, comfy_org_api,
                      {"workflow": API_WORKFLOW, "extra_data": {"api_key_comfy_org": secret}})
    assert job["status"] == "failed"  # the stand-in refuses every key
    assert calls and all(call.headers.get("x-api-key") == secret for call in calls), calls

    without, calls = _run(http, admin, comfy_org_api, {"workflow": API_WORKFLOW})
    assert without["status"] == "failed"
    assert calls and not any("x-api-key" in call.headers for call in calls)

    for answer in (http.get(job["urls"]["self"], headers=admin), http.get(f"/api/runs/{job['id']}", headers=admin),
                   http.get(f"{job['urls']['self']}/workflow", headers=admin)):
        assert answer.status_code == 200 and secret not in answer.text
    stored = b"".join(path.read_bytes() for path in Path(server.data_dir).rglob("*") if path.is_file())
    assert secret.encode() not in stored  # the database (and its WAL), the logs, the run's files
