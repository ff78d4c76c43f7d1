"""Publish-time checks over HTTP (the real app, the real engine): a workflow the engine would refuse is refused
when it is published, naming what to fix, and analyze reports the same; text inputs have a maximum length, shown
in the docs and the form and enforced on every run."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import httpx
import pytest

from tests.support.prompts import shipped
from tests.support.server import AppServer


@pytest.fixture(scope="module")
def server(shared_app: AppServer) -> AppServer:
    # The engine holds a checkpoint: a workflow naming another one is a model the engine lacks among those it has.
    return shared_app


def publish(http: httpx.Client, admin: dict[str, str], workflow: dict[str, Any],
            inputs: list[dict[str, Any]] | None = None, **body: Any) -> httpx.Response:
    return http.post("/api/apps", json={"name": "Checked", "slug": f"checked-{uuid.uuid4().hex[:6]}",
                                        "workflow": workflow, "inputs": inputs or [], **body}, headers=admin)


def analyze(http: httpx.Client, admin: dict[str, str], workflow: dict[str, Any]) -> list[dict[str, Any]]:
    response = http.post("/api/workflows/analyze", json={"workflow": workflow}, headers=admin)
    assert response.status_code == 200, response.text
    problems: list[dict[str, Any]] = response.json()["problems"]
    return problems


def demo(**width_inputs: Any) -> dict[str, Any]:
    workflow = copy.deepcopy(shipped("demo_invert.json"))
    workflow["1"]["inputs"].update(width_inputs)
    return workflow


def with_cycle() -> dict[str, Any]:
    workflow = demo()
    workflow["4"] = {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}}
    workflow["2"]["inputs"]["image"] = ["4", 0]  # 2 -> 4 -> 2, feeding the save node
    return workflow


def with_self_loop() -> dict[str, Any]:
    workflow = demo()
    workflow["2"]["inputs"]["image"] = ["2", 0]
    return workflow


@pytest.mark.parametrize(("workflow", "kind", "named"), [
    (with_cycle(), "cycle", "Nodes '2' (ImageInvert), '4' (ImageInvert) feed one another in a cycle"),
    (with_self_loop(), "cycle", "Node '2' (ImageInvert) is linked to itself"),
    (demo(width="abc"), "invalid_value", "Node '1' (EmptyImage): input 'width' holds \"abc\", which is not a whole "
                                         "number (INT); give a number between 1 and 16384"),
    (demo(width=1e9), "value_out_of_range", "Node '1' (EmptyImage): input 'width' is 1000000000, out of range: "
                                            "give a value between 1 and 16384"),
])
def test_a_workflow_the_engine_would_refuse_is_refused_at_publish(http: httpx.Client, admin: dict[str, str],
                                                                  workflow: dict[str, Any], kind: str,
                                                                  named: str) -> None:
    response = publish(http, admin, workflow)
    assert response.status_code == 422, response.text
    assert any(named in problem for problem in response.json()["detail"]["problems"]), response.text
    # analyze reports the same problem, located
    assert kind in [p["kind"] for p in analyze(http, admin, workflow)]


def test_analyze_names_the_nodes_of_a_cycle(http: httpx.Client, admin: dict[str, str]) -> None:
    (problem,) = [p for p in analyze(http, admin, with_cycle()) if p["kind"] == "cycle"]
    assert problem["nodes"] == ["2", "4"]


@pytest.mark.parametrize("width", [64, 64.0, "64"])
def test_literals_the_engine_accepts_still_publish(http: httpx.Client, admin: dict[str, str], width: Any) -> None:
    response = publish(http, admin, demo(width=width))
    assert response.status_code == 201, response.text


def test_a_missing_model_stays_publishable(http: httpx.Client, admin: dict[str, str]) -> None:
    workflow = shipped("txt2img_sd15.json")
    workflow["4"]["inputs"]["ckpt_name"] = "not-on-this-engine.safetensors"
    response = publish(http, admin, workflow, [{"node": "4", "input": "ckpt_name"}])
    assert response.status_code == 201, response.text


def test_a_wrong_sampler_name_is_refused(http: httpx.Client, admin: dict[str, str]) -> None:
    workflow = shipped("txt2img_sd15.json")
    workflow["3"]["inputs"]["sampler_name"] = "warp-drive"
    response = publish(http, admin, workflow)
    assert response.status_code == 422
    (problem,) = response.json()["detail"]["problems"]
    assert problem.startswith("Node '3' (KSampler): input 'sampler_name' holds \"warp-drive\", which is not one "
                              "of its choices: \"euler\"")


@pytest.mark.parametrize(("given", "expected"), [
    ({"default": 1e9}, "is above the maximum 16384"),
    ({"max": 1e9}, "max 1000000000.0 is above what the engine accepts (16384)"),
    ({"min": "NaN"}, "min must be a finite number"),
    ({"step": -8}, "step must be above 0"),
])
def test_published_input_settings_are_checked_against_the_schema(http: httpx.Client, admin: dict[str, str],
                                                                 given: dict[str, Any], expected: str) -> None:
    body = json.dumps({"name": "Checked", "workflow": demo(), "inputs": [{"node": "1", "input": "width", **given}]})
    body = body.replace('"NaN"', "NaN")  # what a Python client writes for float("nan")
    response = http.post("/api/apps", content=body, headers={**admin, "Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert expected in response.text


# --- the maximum length of text inputs ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def texts(http: httpx.Client, admin: dict[str, str]) -> str:
    """A model-free app with two text inputs: the save node's prefix (default limit) and a short one."""
    workflow = demo()
    workflow["5"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "other", "images": ["2", 0]}}
    response = publish(http, admin, workflow, [{"node": "3", "input": "filename_prefix", "name": "prefix"},
                                               {"node": "5", "input": "filename_prefix", "name": "short",
                                                "max_length": 12}], public=True)
    assert response.status_code == 201, response.text
    return str(response.json()["slug"])


def test_text_past_its_limit_is_refused_naming_input_length_and_limit(http: httpx.Client, texts: str,
                                                                      admin: dict[str, str]) -> None:
    before = len(http.get(f"/api/runs?app={texts}&limit=200", headers=admin).json()["runs"])
    response = http.post(f"/api/apps/{texts}/runs", json={"inputs": {"prefix": "p" * 2**20, "short": "s" * 13}},
                         headers=admin)
    assert response.status_code == 422, response.text
    problems = {p["input"]: p for p in response.json()["detail"]["problems"]}
    assert problems["prefix"]["message"] == "the text is 1048576 characters long, over the limit of 10000"
    assert problems["short"]["message"] == "the text is 13 characters long, over the limit of 12"
    assert len(response.content) < 2000  # the value is never echoed back
    assert len(http.get(f"/api/runs?app={texts}&limit=200", headers=admin).json()["runs"]) == before


def test_the_limit_is_in_the_docs_and_the_form(http: httpx.Client, texts: str, admin: dict[str, str]) -> None:
    schema = http.get(f"/api/apps/{texts}/openapi.json", headers=admin).json()
    fields = next(s["properties"] for name, s in schema["components"]["schemas"].items()
                  if name.endswith("Inputs") and "short" in s.get("properties", {}))
    assert fields["short"]["anyOf"][0]["maxLength"] == 12
    assert fields["prefix"]["anyOf"][0]["maxLength"] == 10000
    listed = http.get(f"/api/apps/{texts}", headers=admin).json()["latest"]["inputs"]
    assert {i["name"]: i["max_length"] for i in listed} == {"prefix": 10000, "short": 12}
    config = http.get(f"/apps/{texts}/config", headers=admin).json()
    boxes = {c["props"].get("elem_id"): c["props"] for c in config["components"] if c.get("type") == "textbox"}
    assert boxes["input-short"]["max_length"] == 12
    assert "at most 12 characters" in boxes["input-short"]["info"]
