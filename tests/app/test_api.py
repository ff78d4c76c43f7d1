"""The published service end to end over HTTP: the real app process, the real engine, a real SQLite DB."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.support.paths import REPO
from tests.support.prompts import shipped
from tests.support.server import AppServer


@pytest.fixture(scope="module")
def server(shared_app: AppServer) -> AppServer:
    return shared_app


def publish(http: httpx.Client, admin: dict[str, str], **body: Any) -> httpx.Response:
    return http.post("/api/apps", json=body, headers=admin)


@pytest.fixture(scope="module")
def demo(http: httpx.Client, admin: dict[str, str]) -> str:
    response = publish(http, admin, name="Demo invert", slug=f"demo-{uuid.uuid4().hex[:6]}",
                       workflow=shipped("demo_invert.json"),
                       inputs=[{"node": "1", "input": "color", "name": "color"},
                               {"node": "1", "input": "width", "name": "size", "max": 256},
                               {"node": "1", "input": "height", "name": "height", "max": 256}])
    assert response.status_code == 201, response.text
    return response.json()["slug"]


@pytest.fixture(scope="module")
def txt2img(http: httpx.Client, admin: dict[str, str], sd15_checkpoint: str) -> str:
    workflow = shipped("txt2img_sd15.json")
    workflow["4"]["inputs"]["ckpt_name"] = sd15_checkpoint
    workflow["5"]["inputs"].update(width=64, height=64)
    response = publish(http, admin, name="Tiny txt2img", slug=f"t2i-{uuid.uuid4().hex[:6]}", workflow=workflow,
                       inputs=[{"node": "6", "input": "text", "name": "prompt"},
                               {"node": "3", "input": "seed", "name": "seed"},
                               {"node": "3", "input": "steps", "name": "steps", "default": 2},
                               {"node": "5", "input": "width", "name": "width"},
                               {"node": "5", "input": "height", "name": "height"}])
    assert response.status_code == 201, response.text
    return response.json()["slug"]


def ui_fixture(name: str) -> dict[str, Any]:
    """A UI-format workflow.json as the ComfyUI editor saves it."""
    data: dict[str, Any] = json.loads((REPO / "tests" / "publisher" / "fixtures" / name).read_text())
    return data


def ui_with_unknown_node() -> dict[str, Any]:
    ui = ui_fixture("ui_demo_invert.json")
    next(n for n in ui["nodes"] if n["id"] == 2)["type"] = "FancyInvert"
    return ui


def wait_final(http: httpx.Client, run_id: str, headers: dict[str, str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = http.get(f"/api/runs/{run_id}", headers=headers).json()
        if run["status"] in ("succeeded", "failed", "cancelled", "timed_out"):
            return run
        time.sleep(0.05)
    raise TimeoutError(run)


def png(color: tuple[int, int, int] = (10, 20, 30), size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, format="PNG")
    return buffer.getvalue()


# --- publishing -------------------------------------------------------------------------------------------

def test_publish_gives_typed_inputs_and_versions(http: httpx.Client, admin: dict[str, str]) -> None:
    slug = f"pub-{uuid.uuid4().hex[:6]}"
    first = publish(http, admin, name="Pub", slug=slug, workflow=shipped("demo_invert.json"),
                    inputs=[{"node": "1", "input": "color"}])
    assert first.status_code == 201
    body = first.json()
    assert (body["slug"], body["version"]) == (slug, 1)
    (color,) = body["latest"]["inputs"]
    assert (color["node"], color["input"], color["type"], color["min"]) == ("1", "color", "int", 0)
    assert body["endpoints"]["run"] == f"/api/apps/{slug}/run"

    second = publish(http, admin, name="Pub", slug=slug, workflow=shipped("demo_invert.json"),
                     inputs=[{"node": "1", "input": "width", "name": "width"}])
    assert second.json()["version"] == 2
    assert http.get(f"/api/apps/{slug}", headers=admin).json()["version"] == 2
    first_inputs = http.get(f"/api/apps/{slug}/versions/1", headers=admin).json()["inputs"]
    assert [i["name"] for i in first_inputs] == [color["name"]]
    assert [v["number"] for v in http.get(f"/api/apps/{slug}/versions", headers=admin).json()] == [1, 2]
    assert slug in [a["slug"] for a in http.get("/api/apps", headers=admin).json()]

    assert http.delete(f"/api/apps/{slug}", headers=admin).status_code == 204
    assert http.get(f"/api/apps/{slug}", headers=admin).status_code == 404


def test_analyze_lists_candidates_outputs_and_missing_nodes(http: httpx.Client, admin: dict[str, str]) -> None:
    workflow = shipped("txt2img_sd15.json")
    workflow["20"] = {"class_type": "FancyUpscaler", "inputs": {"image": ["8", 0]}}
    assert http.post("/api/workflows/analyze", json={"workflow": workflow}).status_code == 401
    result = http.post("/api/workflows/analyze", json={"workflow": workflow}, headers=admin).json()

    assert result["format"] == "api"
    assert result["missing_node_types"] == [{"class_type": "FancyUpscaler", "nodes": ["20"], "pack": None}]
    seed = next(i for i in result["inputs"] if (i["node"], i["input"]) == ("3", "seed"))
    assert (seed["type"], seed["suggested"], seed["randomize"]) == ("seed", True, True)
    assert [o["node_id"] for o in result["outputs"]] == ["9"]
    assert result["models"][0]["filename"] == "v1-5-pruned-emaonly.safetensors"


def test_a_ui_format_workflow_is_converted_published_and_run(http: httpx.Client, admin: dict[str, str]) -> None:
    ui = ui_fixture("ui_demo_invert.json")
    analyzed = http.post("/api/workflows/analyze", json={"workflow": ui}, headers=admin).json()
    assert analyzed["format"] == "ui"
    assert analyzed["workflow"] == shipped("demo_invert.json")  # what ComfyUI's Export (API) writes
    assert [o["node_id"] for o in analyzed["outputs"]] == ["3"]

    slug = f"ui-{uuid.uuid4().hex[:6]}"
    published = publish(http, admin, name="From the editor", slug=slug, workflow=ui,
                        inputs=[{"node": "1", "input": "color", "name": "color"}])
    assert published.status_code == 201, published.text
    assert published.json()["latest"]["inputs"][0]["default"] == 16744448  # the PrimitiveNode's value

    run = http.post(f"/api/apps/{slug}/run", json={"inputs": {"color": 0x0A141E}}, headers=admin).json()
    assert run["status"] == "succeeded", run
    (output,) = run["outputs"]
    image = Image.open(io.BytesIO(http.get(output["url"]).content)).convert("RGB")
    assert image.size == (64, 64) and image.getpixel((1, 1)) == (0xF5, 0xEB, 0xE1)  # inverted, blur bypassed


def test_analyzing_a_ui_workflow_with_an_unknown_node_names_it(http: httpx.Client, admin: dict[str, str]) -> None:
    response = http.post("/api/workflows/analyze", json={"workflow": ui_with_unknown_node()}, headers=admin)
    assert response.status_code == 422
    assert response.json()["detail"]["format"] == "ui"
    assert "node 2 (FancyInvert) is not installed on this engine" in response.json()["detail"]["message"]


@pytest.mark.parametrize(("workflow", "expected"), [
    ({"nodes": [], "links": []}, "The workflow has no nodes"),
    (ui_with_unknown_node(), "node 2 (FancyInvert) is not installed on this engine"),
    ({"1": {"class_type": "NoSuchNode", "inputs": {}}}, "NoSuchNode"),
])
def test_publishing_a_bad_workflow_says_why(http: httpx.Client, admin: dict[str, str], workflow: dict,
                                             expected: str) -> None:
    response = publish(http, admin, name="Bad", workflow=workflow, inputs=[])
    assert response.status_code == 422
    assert expected in json.dumps(response.json()["detail"])


def test_publishing_an_input_that_does_not_exist_names_it(http: httpx.Client, admin: dict[str, str]) -> None:
    response = publish(http, admin, name="Bad input", workflow=shipped("demo_invert.json"),
                       inputs=[{"node": "1", "input": "colour"}, {"node": "7", "input": "x"}])
    problems = response.json()["detail"]["problems"]
    assert response.status_code == 422
    assert "input 'colour' of node 1 (EmptyImage) does not exist" in problems[0]
    assert "node '7' is not in the workflow" in problems[1]


# --- running ----------------------------------------------------------------------------------------------

def test_sync_run_returns_the_output(http: httpx.Client, demo: str, runner: dict[str, str]) -> None:
    response = http.post(f"/api/apps/{demo}/run", json={"inputs": {"color": 0x0A141E, "size": 16, "height": 16}},
                         headers=runner)

    assert response.status_code == 200, response.text
    run = response.json()
    assert run["status"] == "succeeded" and run["version"] == 1
    assert run["inputs"]["color"] == 0x0A141E
    assert run["timings"]["exec_ms"] is not None and run["timings"]["total_ms"] >= run["timings"]["exec_ms"]
    (output,) = run["outputs"]
    assert output["kind"] == "image" and output["node"] == "3"
    image = Image.open(io.BytesIO(http.get(output["url"]).content)).convert("RGB")
    assert image.size == (16, 16) and image.getpixel((1, 1)) == (0xF5, 0xEB, 0xE1)


def test_async_run_is_accepted_then_succeeds(http: httpx.Client, demo: str, runner: dict[str, str]) -> None:
    response = http.post(f"/api/apps/{demo}/runs", json={"inputs": {"color": 1}}, headers=runner)
    assert response.status_code == 202
    assert response.headers["location"] == f"/api/runs/{response.json()['id']}"
    run = wait_final(http, response.json()["id"], runner)
    assert run["status"] == "succeeded" and run["outputs"]


def test_seed_is_randomized_and_reported(http: httpx.Client, txt2img: str, runner: dict[str, str]) -> None:
    run = http.post(f"/api/apps/{txt2img}/run", json={"inputs": {"prompt": "a cat"}}, headers=runner).json()
    again = http.post(f"/api/apps/{txt2img}/run", json={"inputs": {"prompt": "a cat", "seed": run["inputs"]["seed"]}},
                      headers=runner).json()
    assert run["status"] == again["status"] == "succeeded"
    assert isinstance(run["inputs"]["seed"], int) and run["inputs"]["steps"] == 2
    first = http.get(run["outputs"][0]["url"]).content
    assert Image.open(io.BytesIO(first)).tobytes() == Image.open(
        io.BytesIO(http.get(again["outputs"][0]["url"]).content)).tobytes()


def test_events_stream_progress_then_completion(http: httpx.Client, txt2img: str, runner: dict[str, str]) -> None:
    run = http.post(f"/api/apps/{txt2img}/runs", json={"inputs": {"steps": 6, "width": 128, "height": 128}},
                    headers=runner).json()
    events: list[tuple[str, dict]] = []
    with http.stream("GET", f"/api/runs/{run['id']}/events", headers=runner) as stream:
        name = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name:
                events.append((name, json.loads(line[6:])))
    kinds = [name for name, _ in events]
    assert kinds[0] == "status" and kinds[-1] == "completed"
    progress = [data for name, data in events if name == "progress"]
    assert progress and progress[-1]["max"] == 6 and progress[-1]["value"] == 6
    assert events[-1][1]["status"] == "succeeded"


def test_status_shows_the_runs_progress_while_it_runs_and_keeps_the_last(http: httpx.Client, txt2img: str,
                                                                         runner: dict[str, str]) -> None:
    run = http.post(f"/api/apps/{txt2img}/runs", json={"inputs": {"steps": 40, "width": 128, "height": 128}},
                    headers=runner).json()
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        now = http.get(f"/api/runs/{run['id']}", headers=runner).json()
        if now["status"] == "running" and now["progress"]:
            seen.append(now["progress"])
        if now["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.05)
    assert now["status"] == "succeeded", now
    steps = [p["value"] for p in seen if p["max"] == 40]
    assert steps and steps == sorted(steps) and steps[0] < 40, seen  # live, step by step, as polled
    assert now["progress"]["value"] == now["progress"]["max"] == 40  # the last one stays with the ended run


def test_cancel_queued_and_running(http: httpx.Client, txt2img: str, demo: str, runner: dict[str, str]) -> None:
    slow = http.post(f"/api/apps/{txt2img}/runs", json={"inputs": {"steps": 200, "width": 256, "height": 256}},
                     headers=runner).json()
    queued = http.post(f"/api/apps/{demo}/runs", json={"inputs": {"color": 5}}, headers=runner).json()
    deadline = time.monotonic() + 30
    while http.get(f"/api/runs/{slow['id']}", headers=runner).json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert http.get(f"/api/runs/{queued['id']}", headers=runner).json()["queue_position"] == 1

    cancelled = http.post(f"/api/runs/{queued['id']}/cancel", headers=runner).json()
    assert cancelled["status"] == "cancelled" and cancelled["started_at"] is None
    stopped = http.post(f"/api/runs/{slow['id']}/cancel", headers=runner).json()
    assert stopped["status"] == "cancelled" and stopped["started_at"] is not None


def test_pinned_version_keeps_answering(http: httpx.Client, admin: dict[str, str], runner: dict[str, str]) -> None:
    slug = f"pin-{uuid.uuid4().hex[:6]}"
    publish(http, admin, name="Pinned", slug=slug, workflow=shipped("demo_invert.json"),
            inputs=[{"node": "1", "input": "color", "name": "color"}])
    publish(http, admin, name="Pinned", slug=slug, workflow=shipped("demo_invert.json"),
            inputs=[{"node": "1", "input": "color", "name": "tint"}])

    old = http.post(f"/api/apps/{slug}/versions/1/run", json={"inputs": {"color": 3}}, headers=runner)
    new = http.post(f"/api/apps/{slug}/run", json={"inputs": {"tint": 3}}, headers=runner)
    stale = http.post(f"/api/apps/{slug}/run", json={"inputs": {"color": 3}}, headers=runner)
    assert (old.json()["status"], old.json()["version"]) == ("succeeded", 1)
    assert (new.json()["status"], new.json()["version"]) == ("succeeded", 2)
    assert stale.status_code == 422 and stale.json()["detail"]["problems"][0]["input"] == "color"


def test_idempotency_key_returns_the_same_run(http: httpx.Client, demo: str, runner: dict[str, str]) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex, **runner}
    first = http.post(f"/api/apps/{demo}/runs", json={"inputs": {"color": 9}}, headers=key).json()
    second = http.post(f"/api/apps/{demo}/runs", json={"inputs": {"color": 9}}, headers=key).json()
    assert first["id"] == second["id"]
    history = http.get(f"/api/runs?app={demo}&limit=200", headers=runner).json()["runs"]
    assert [r["id"] for r in history].count(first["id"]) == 1


def test_image_input_as_base64_and_as_multipart(http: httpx.Client, admin: dict[str, str],
                                                runner: dict[str, str]) -> None:
    workflow = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "inv"}},
    }
    slug = f"img-{uuid.uuid4().hex[:6]}"
    published = publish(http, admin, name="Invert upload", slug=slug, workflow=workflow,
                        inputs=[{"node": "1", "input": "image", "name": "photo", "required": True}])
    assert published.status_code == 201, published.text

    as_json = http.post(f"/api/apps/{slug}/run", headers=runner,
                        json={"inputs": {"photo": "data:image/png;base64," + base64.b64encode(png()).decode()}})
    as_form = http.post(f"/api/apps/{slug}/run", headers=runner,
                        files={"photo": ("mine.png", png((200, 0, 0)), "image/png")})
    for response, expected in ((as_json, (245, 235, 225)), (as_form, (55, 255, 255))):
        run = response.json()
        assert run["status"] == "succeeded", run
        pixel = Image.open(io.BytesIO(http.get(run["outputs"][0]["url"]).content)).convert("RGB").getpixel((0, 0))
        assert all(abs(a - b) <= 1 for a, b in zip(pixel, expected, strict=True))

    not_image = http.post(f"/api/apps/{slug}/run", headers=runner, files={"photo": ("x.png", b"GIF89a nope")})
    missing = http.post(f"/api/apps/{slug}/run", headers=runner, json={"inputs": {}})
    assert not_image.status_code == 422 and "is not an image" in not_image.json()["detail"]["problems"][0]["message"]
    assert missing.status_code == 422 and missing.json()["detail"]["problems"][0]["input"] == "photo"


@pytest.mark.parametrize(("inputs", "field", "text"), [
    ({"color": "red"}, "color", "integer"),
    ({"size": 4096}, "size", "256"),
    ({"size": 0}, "size", "1"),
    ({"nope": 1}, "nope", "unknown input"),
])
def test_bad_inputs_are_refused_before_queueing(http: httpx.Client, demo: str, runner: dict[str, str],
                                                inputs: dict, field: str, text: str) -> None:
    before = len(http.get(f"/api/runs?app={demo}&limit=200", headers=runner).json()["runs"])
    response = http.post(f"/api/apps/{demo}/runs", json={"inputs": inputs}, headers=runner)
    assert response.status_code == 422
    (problem,) = response.json()["detail"]["problems"]
    assert problem["input"] == field and text in json.dumps(problem)
    assert len(http.get(f"/api/runs?app={demo}&limit=200", headers=runner).json()["runs"]) == before


def test_unknown_choice_lists_the_allowed_ones(http: httpx.Client, admin: dict[str, str],
                                               runner: dict[str, str], sd15_checkpoint: str) -> None:
    workflow = shipped("txt2img_sd15.json")
    workflow["4"]["inputs"]["ckpt_name"] = sd15_checkpoint
    slug = f"choice-{uuid.uuid4().hex[:6]}"
    publish(http, admin, name="Sampler", slug=slug, workflow=workflow,
            inputs=[{"node": "3", "input": "sampler_name", "name": "sampler", "choices": ["euler", "ddim"]}])
    response = http.post(f"/api/apps/{slug}/runs", json={"inputs": {"sampler": "heun"}}, headers=runner)
    (problem,) = response.json()["detail"]["problems"]
    assert response.status_code == 422 and problem["allowed"] == ["euler", "ddim"]


def test_oversize_upload_is_refused(tmp_path: Path, engine_url: str) -> None:
    server = AppServer(tmp_path, comfyui_url=engine_url, extra=("--max-upload-mb", "1")).start()
    try:
        admin = {"Authorization": f"Bearer {server.create_key('a', admin=True)}"}
        workflow = {"1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}},
                    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}
        with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as http:
            publish(http, admin, name="Big", slug="big", workflow=workflow, public=True,
                    inputs=[{"node": "1", "input": "image", "name": "photo"}])
            big = bytes(range(256)) * (1_200_000 // 256)  # the size is checked before the content
            response = http.post("/api/apps/big/runs", files={"photo": ("big.png", big, "image/png")})
        assert response.status_code == 422
        assert "larger than 1 MiB" in response.json()["detail"]["problems"][0]["message"]
    finally:
        server.stop()


# --- auth -------------------------------------------------------------------------------------------------

def test_keys_gate_publishing_and_private_apps(server: AppServer, http: httpx.Client, demo: str,
                                               runner: dict[str, str], admin: dict[str, str]) -> None:
    body = {"inputs": {"color": 1}}
    assert http.post(f"/api/apps/{demo}/runs", json=body).status_code == 401
    assert http.post(f"/api/apps/{demo}/runs", json=body,
                     headers={"Authorization": "Bearer cpk_wrong"}).status_code == 401
    assert publish(http, runner, name="x", workflow=shipped("demo_invert.json")).status_code == 403
    assert publish(http, {}, name="x", workflow=shipped("demo_invert.json")).status_code == 401

    token = server.create_key("short-lived")
    temp = {"Authorization": f"Bearer {token}"}
    assert http.post(f"/api/apps/{demo}/runs", json=body, headers=temp).status_code == 202
    key_id = next(k["id"] for k in http.get("/api/keys", headers=admin).json() if k["name"] == "short-lived")
    assert http.delete(f"/api/keys/{key_id}", headers=admin).json()["revoked_at"] is not None
    refused = http.post(f"/api/apps/{demo}/runs", json=body, headers=temp)
    assert refused.status_code == 401 and "unknown or revoked" in refused.json()["detail"]
    assert token not in server.log.read_text()


def test_public_app_runs_without_a_key(http: httpx.Client, admin: dict[str, str], demo: str) -> None:
    slug = f"open-{uuid.uuid4().hex[:6]}"
    publish(http, admin, name="Open", slug=slug, workflow=shipped("demo_invert.json"), public=True)
    run = http.post(f"/api/apps/{slug}/run", json={}).json()
    assert run["status"] == "succeeded"
    listed = [app["slug"] for app in http.get("/api/apps").json()]
    assert slug in listed and demo not in listed  # without a key, private apps are not shown
    assert http.get(f"/api/apps/{demo}").status_code == 401
    assert f"/api/apps/{slug}/run" in http.get("/openapi.json").json()["paths"]
    # republishing without saying "public" keeps the app public
    again = publish(http, admin, name="Open", slug=slug, workflow=shipped("demo_invert.json"))
    assert again.json()["public"] is True and again.json()["version"] == 2


def test_only_the_submitter_or_an_admin_may_cancel(server: AppServer, http: httpx.Client, demo: str,
                                                   runner: dict[str, str], admin: dict[str, str]) -> None:
    other = {"Authorization": f"Bearer {server.create_key('other')}"}
    run = http.post(f"/api/apps/{demo}/runs", json={"inputs": {"color": 2}}, headers=runner).json()
    assert http.post(f"/api/runs/{run['id']}/cancel", headers=other).status_code == 403
    assert run["id"] not in [r["id"] for r in http.get("/api/runs", headers=other).json()["runs"]]
    assert run["id"] in [r["id"] for r in http.get("/api/runs", headers=admin).json()["runs"]]


# --- docs and health --------------------------------------------------------------------------------------

def test_each_app_has_a_typed_request_model(http: httpx.Client, demo: str, runner: dict[str, str]) -> None:
    assert f"/api/apps/{demo}/run" not in http.get("/openapi.json").json()["paths"]  # private: not in public docs
    assert http.get(f"/api/apps/{demo}/openapi.json").status_code == 401
    schema = http.get(f"/api/apps/{demo}/openapi.json", headers=runner).json()
    path = schema["paths"][f"/api/apps/{demo}/run"]["post"]
    model = path["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    inputs_ref = schema["components"]["schemas"][model]["properties"]["inputs"]["$ref"].rsplit("/", 1)[1]
    fields = schema["components"]["schemas"][inputs_ref]["properties"]
    assert set(fields) == {"color", "size", "height"}
    size = fields["size"]["anyOf"][0]
    assert (size["type"], size["minimum"], size["maximum"]) == ("integer", 1, 256)


def test_health_probes(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] is True


async def test_many_concurrent_reads_and_submissions_all_answer(server: AppServer, http: httpx.Client, demo: str,
                                                                 runner: dict[str, str]) -> None:
    """More concurrent requests than the DB pool has connections (5 + 10): none may wait on the pool with the event
    loop blocked (that stalled every request for the pool's 30 s timeout, then answered 500)."""
    done = http.post(f"/api/apps/{demo}/run", json={"inputs": {"color": 7}}, headers=runner).json()
    assert done["status"] == "succeeded"
    async with httpx.AsyncClient(base_url=server.url, timeout=20, trust_env=False,
                                 limits=httpx.Limits(max_connections=100)) as client:
        reads = [client.get(f"/api/runs/{done['id']}", headers=runner) for _ in range(64)]
        history = [client.get("/api/runs", params={"app": demo, "limit": 20}, headers=runner) for _ in range(8)]
        submissions = [client.post(f"/api/apps/{demo}/runs", json={"inputs": {"color": i}}, headers=runner)
                       for i in range(16)]
        answers = await asyncio.gather(*reads, *history, *submissions)
    assert [r.status_code for r in answers[:72]] == [200] * 72, [r.text for r in answers if r.status_code != 200]
    assert all(r.json()["id"] == done["id"] and r.json()["status"] == "succeeded" for r in answers[:64])
    assert [r.status_code for r in answers[72:]] == [202] * 16
    for accepted in answers[72:]:
        assert wait_final(http, accepted.json()["id"], runner)["status"] == "succeeded"


def test_outputs_are_served_whole_or_streamed_with_ranges(server: AppServer, http: httpx.Client) -> None:
    folder = server.data_dir / "outputs" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    small, big = b"\x89PNG-small", bytes(range(256)) * 8192  # 10 bytes; 2 MiB (streamed)
    (folder / "small.png").write_bytes(small)
    (folder / "big.bin").write_bytes(big)
    (folder / "half.png.partial").write_bytes(small)
    base = f"/files/outputs/{folder.name}"

    whole = http.get(f"{base}/small.png")
    assert whole.status_code == 200 and whole.content == small
    assert whole.headers["content-type"] == "image/png" and "content-disposition" not in whole.headers
    assert whole.headers["x-content-type-options"] == "nosniff"
    assert whole.headers["content-security-policy"] == "sandbox"

    streamed = http.get(f"{base}/big.bin")
    assert streamed.status_code == 200 and streamed.content == big
    assert streamed.headers["content-disposition"] == 'attachment; filename="big.bin"'
    part = http.get(f"{base}/big.bin", headers={"Range": "bytes=256-511"})
    assert part.status_code == 206 and part.content == big[256:512]

    for missing in ("nothing.png", "half.png.partial", "../../publisher.db"):
        assert http.get(f"{base}/{missing}").status_code == 404
