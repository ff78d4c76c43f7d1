"""The Comfy API v2's jobs, server-wide (/api/v2) and per app (/apps/{slug}/api/v2), driven by Comfy-Org's own client
(comfy-sdk) against the real app and engine; every answer is checked against the SDK's models (comfy_low.models),
which are generated from the contract."""

from __future__ import annotations

import io
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from comfy_low.models import ErrorEnvelope, Job, JobWorkflowResponse, PreviewEvent, Progress, StatusEvent
from comfy_low.models import Output as OutputModel
from comfy_sdk import Comfy
from comfy_sdk.events import OutputReady, StatusChange
from comfy_sdk.events import Progress as ProgressEvent
from comfy_sdk.exceptions import IdempotencyKeyReuse, InvalidWorkflow, MissingAsset
from PIL import Image

from app.assets.store import AssetStore
from db.session import create_db_engine, make_session_factory
from tests.support.prompts import demo_invert, load_invert, shipped, txt2img
from tests.support.server import AppServer

ORANGE = 0xFF8000  # EmptyImage's color: (255, 128, 0)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine_url: str) -> Iterator[AppServer]:
    app = AppServer(tmp_path_factory.mktemp("v2"), comfyui_url=engine_url).start()
    yield app
    app.stop()


@pytest.fixture(scope="module")
def workflows_key(server: AppServer) -> str:
    out = server.cli("keys", "create", "scripts", "--workflows")
    assert "workflows" in server.cli("keys", "list")
    return out.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def runner_key(server: AppServer) -> str:
    return server.create_key("app-runner")


def sdk(base_url: str, key: str | None) -> Comfy:
    """The official client, pointed at a base URL (it reads COMFY_BASE_URL when it is made)."""
    before = os.environ.get("COMFY_BASE_URL")
    os.environ["COMFY_BASE_URL"] = base_url
    try:
        return Comfy(api_key=key)
    finally:
        if before is None:
            del os.environ["COMFY_BASE_URL"]
        else:
            os.environ["COMFY_BASE_URL"] = before


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    envelope = ErrorEnvelope.model_validate(response.json())
    assert envelope.error.code == code, response.text
    return response.json()["error"]


def job_of(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    Job.model_validate(response.json())
    return response.json()


def wait_terminal(http: httpx.Client, url: str, headers: dict[str, str], timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = job_of(http.get(url, headers=headers))
        if job["status"] in ("succeeded", "failed", "canceled", "expired"):
            return job
        time.sleep(0.05)
    raise TimeoutError(url)


def wait_status(http: httpx.Client, url: str, headers: dict[str, str], status: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while job_of(http.get(url, headers=headers))["status"] != status:
        assert time.monotonic() < deadline, f"{url} never became {status}"
        time.sleep(0.05)


def pixel_of(data: bytes) -> tuple[int, int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB").getpixel((0, 0))  # type: ignore[return-value]


def inverted(data: bytes, color: tuple[int, int, int]) -> bool:
    """The image is `color` inverted (the engine's float maths may round one step off)."""
    return all(abs(got - (255 - was)) <= 1 for got, was in zip(pixel_of(data), color, strict=True))


def output_bytes(http: httpx.Client, client: Comfy, job_id: str, headers: dict[str, str]) -> list[bytes]:
    """Each output's bytes: through the SDK (GET {base}/api/v2/assets/{id}/content) where the asset routes are
    served, else from the run's own files (GET /api/runs/{id})."""
    assert "/api/v2/jobs/{job_id}" in http.get("/openapi.json").json()["paths"]  # the schemathesis test covers it
    if http.post("/api/v2/assets").status_code != 404:  # the asset routes are served (they ask for a key)
        return [output.to_bytes() for output in client.jobs.get(job_id).outputs]
    run = http.get(f"/api/runs/{job_id}", headers=headers).json()
    return [http.get(output["url"], headers=headers).content for output in run["outputs"]]


def store_asset(server: AppServer, data: bytes, file_path: str, key_id: int | None) -> str:
    """An uploaded asset, as POST /api/v2/assets stores it (its routes come with the asset helper's branch)."""
    engine = create_db_engine(f"sqlite:///{server.data_dir / 'publisher.db'}")
    try:
        with make_session_factory(engine)() as session:
            stored = AssetStore(server.data_dir).put(session, data, content_type="image/png", file_path=file_path,
                                                     api_key_id=key_id, expires_at=None)
            return stored.asset.id
    finally:
        engine.dispose()


def key_id(http: httpx.Client, admin: dict[str, str], prefix: str) -> int:
    return next(k["id"] for k in http.get("/api/keys", headers=admin).json() if prefix.startswith(k["prefix"]))


def png(color: tuple[int, int, int], size: int = 16) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), color).save(out, "PNG")
    return out.getvalue()


# --- server-wide ------------------------------------------------------------------------------------------------


def test_the_sdk_runs_a_workflow_and_streams_its_events(server: AppServer, http: httpx.Client,
                                                         workflows_key: str) -> None:
    client = sdk(server.url, workflows_key)
    job = client.submit(client.workflows.from_json(demo_invert(ORANGE, prefix="v2/demo")))
    Job.model_validate(job._model.model_dump(mode="json"))
    events = list(job.events())
    # The snapshot comes first; a job that ended before the stream opened sends its outputs, then its status.
    assert isinstance(events[0], StatusChange | OutputReady)
    assert any(isinstance(e, ProgressEvent) for e in events)
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("OutputReady") < len(kinds) - 1, kinds  # each output before the terminal status
    assert isinstance(events[-1], StatusChange) and events[-1].status == "succeeded"
    streamed = [e.output.id for e in events if isinstance(e, OutputReady)]

    done = job.result()
    assert done.status == "succeeded" and [o.id for o in done.outputs] == streamed
    raw = job_of(http.get(f"/api/v2/jobs/{job.id}", headers=bearer(workflows_key)))
    assert raw["progress"]["value"] == 1 and raw["metrics"]["execution_ms"] is not None
    assert raw["urls"]["self"] == f"/api/v2/jobs/{job.id}"
    (data,) = output_bytes(http, client, job.id, bearer(workflows_key))
    assert inverted(data, (255, 128, 0))  # the invert of orange

    workflow = http.get(f"/api/v2/jobs/{job.id}/workflow", headers=bearer(workflows_key))
    assert workflow.status_code == 200
    body = JobWorkflowResponse.model_validate(workflow.json())
    assert body.format.value == "api" and body.workflow["1"]["inputs"]["color"] == ORANGE


def test_raw_event_frames_fit_the_contract(server: AppServer, http: httpx.Client, workflows_key: str) -> None:
    created = job_of(http.post("/api/v2/jobs", json={"workflow": demo_invert(0x102030, prefix="v2/raw")},
                               headers=bearer(workflows_key)), 201)
    frames = []
    with http.stream("GET", created["urls"]["events"], headers=bearer(workflows_key)) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: "):
                frames.append((event, json.loads(line[len("data: "):])))
    models = {"status": StatusEvent, "progress": Progress, "output": OutputModel, "preview": PreviewEvent}
    for event, data in frames:
        models[str(event)].model_validate(data)
    names = [event for event, _ in frames]
    assert names[0] in ("status", "output") and names[-1] == "status" and "output" in names
    assert frames[-1][1]["status"] == "succeeded"
    # A finished job's stream is its ending at once: its outputs, then its status.
    with http.stream("GET", created["urls"]["events"], headers=bearer(workflows_key)) as again:
        text = again.read().decode()
    assert text.index("event: output") < text.index("event: status")


def test_v2_jobs_are_ordinary_runs_of_a_hidden_app(server: AppServer, http: httpx.Client, admin: dict[str, str],
                                                   workflows_key: str) -> None:
    first = job_of(http.post("/api/v2/jobs", json={"workflow": demo_invert(1, prefix="v2/same")},
                             headers=bearer(workflows_key)), 201)
    second = job_of(http.post("/api/v2/jobs", json={"workflow": demo_invert(1, prefix="v2/same")}, headers=admin), 201)
    for job in (first, second):
        wait_terminal(http, job["urls"]["self"], admin)
    runs = {run["id"]: run for run in http.get("/api/runs", headers=admin).json()["runs"]}
    assert {first["id"], second["id"]} <= set(runs)
    assert runs[first["id"]]["app"] == runs[second["id"]]["app"] == "_workflows"
    assert runs[first["id"]]["version"] == runs[second["id"]]["version"]  # the same graph: one version
    internal = http.get("/api/runs?app=_workflows", headers=admin).json()["runs"]
    assert {first["id"], second["id"]} <= {run["id"] for run in internal}
    assert "_workflows" not in [app["slug"] for app in http.get("/api/apps", headers=admin).json()]
    assert http.post("/api/apps/_workflows/runs", json={"inputs": {}}, headers=admin).status_code == 404
    # Its submitter's key sees it; another key does not.
    other = server.create_key("other")
    error_of(http.get(f"/api/v2/jobs/{first['id']}", headers=bearer(other)), 404, "not_found")


def test_memory_answers_a_jobs_own_key_as_the_database_answers_any_other(
        server: AppServer, http: httpx.Client, admin: dict[str, str]) -> None:
    """A job polled by the key that ran it, and its outputs' bytes, come from memory (app.v2.recent) while it runs
    and for a minute after it ended; a key seen for the first time is answered from the database. Both answers are
    the same, and a key revoked here is refused at once."""
    poller = server.cli("keys", "create", "memory-poller", "--workflows").strip().splitlines()[-1]
    job = job_of(http.post("/api/v2/jobs", json={"workflow": demo_invert(0x203040, prefix="v2/memory")},
                           headers=bearer(poller)), 201)
    from_memory = wait_terminal(http, job["urls"]["self"], bearer(poller))
    assert from_memory["status"] == "succeeded" and from_memory["outputs"]
    first_look = bearer(server.create_key("first-look", admin=True))  # never verified: the database answers
    assert job_of(http.get(job["urls"]["self"], headers=first_look)) == from_memory
    url = from_memory["outputs"][0]["url"]
    second_look = bearer(server.create_key("second-look", admin=True))
    mine, theirs = http.get(url, headers=bearer(poller)), http.get(url, headers=second_look)
    assert mine.status_code == theirs.status_code == 200 and mine.content == theirs.content
    assert inverted(mine.content, (0x20, 0x30, 0x40))
    assert {k: mine.headers.get(k) for k in ("content-type", "x-content-type-options", "content-security-policy",
                                            "accept-ranges", "content-disposition")} == \
           {k: theirs.headers.get(k) for k in ("content-type", "x-content-type-options", "content-security-policy",
                                              "accept-ranges", "content-disposition")}
    # Another key's poll is refused (from the database: memory answers only the job's own key and admins).
    error_of(http.get(job["urls"]["self"], headers=bearer(server.create_key("stranger"))), 404, "not_found")
    key_id = next(k["id"] for k in http.get("/api/keys", headers=admin).json() if k["name"] == "memory-poller")
    assert http.delete(f"/api/keys/{key_id}", headers=admin).status_code == 200
    for path in (job["urls"]["self"], url):
        assert http.get(path, headers=bearer(poller)).status_code == 401


def test_graphs_that_differ_only_in_numbers_share_a_version_and_each_runs_with_its_own(
        http: httpx.Client, admin: dict[str, str], workflows_key: str) -> None:
    key = bearer(workflows_key)
    colors = (0x204060, 0xC08040)
    jobs = [job_of(http.post("/api/v2/jobs", json={"workflow": demo_invert(c, size=16 + i, prefix=f"v2/n{i}")},
                             headers=key), 201) for i, c in enumerate(colors)]
    other = demo_invert(colors[0], prefix="v2/n0")
    other["2"]["_meta"] = {"title": "Invert it"}
    renamed = job_of(http.post("/api/v2/jobs", json={"workflow": other}, headers=key), 201)
    for job in (*jobs, renamed):
        assert wait_terminal(http, job["urls"]["self"], key)["status"] == "succeeded"
    runs = {run["id"]: run for run in http.get("/api/runs?app=_workflows", headers=admin).json()["runs"]}
    # Only numbers and the prefix differ: one version. Anything else (here a node's title): another.
    assert runs[jobs[0]["id"]]["version"] == runs[jobs[1]["id"]]["version"]
    assert runs[renamed["id"]]["version"] != runs[jobs[0]["id"]]["version"]
    for i, (job, color) in enumerate(zip(jobs, colors, strict=True)):
        (output,) = job_of(http.get(job["urls"]["self"], headers=key))["outputs"]
        data = http.get(output["url"], headers=key).content
        assert inverted(data, ((color >> 16) & 255, (color >> 8) & 255, color & 255))  # its own colour ran
        with Image.open(io.BytesIO(data)) as image:
            assert image.size == (16 + i, 16 + i)
        assert output["name"] == f"00-n{i}_00001_.png"  # its own prefix (in the run's own folder)
        ran = http.get(job["urls"]["workflow"], headers=key).json()["workflow"]
        assert ran["1"]["inputs"] == {"width": 16 + i, "height": 16 + i, "batch_size": 1, "color": color}
        assert ran["3"]["inputs"]["filename_prefix"] == f"v2/n{i}"
    # A number the engine refuses, in a structure known already, is named as before.
    too_small = demo_invert(colors[0], size=0, prefix="v2/n0")
    error = error_of(http.post("/api/v2/jobs", json={"workflow": too_small}, headers=key), 422, "invalid_workflow")
    assert {e["field"] for e in error["details"]["node_errors"]["1"]} == {"width", "height"}
    assert "out of range" in error["message"]
    huge = demo_invert(2**70, prefix="v2/n0")
    error = error_of(http.post("/api/v2/jobs", json={"workflow": huge}, headers=key), 422, "invalid_workflow")
    assert "64 bits" in error["message"]
    escaping = demo_invert(colors[0], prefix="../../outside")
    error = error_of(http.post("/api/v2/jobs", json={"workflow": escaping}, headers=key), 422, "invalid_workflow")
    assert "filename_prefix" in error["message"] and "leaves" in error["message"]


def test_who_may_run_any_workflow(http: httpx.Client, runner_key: str) -> None:
    body = {"workflow": demo_invert(2)}
    error_of(http.post("/api/v2/jobs", json=body), 401, "unauthorized")
    error_of(http.post("/api/v2/jobs", json=body, headers=bearer(runner_key)), 403, "forbidden")
    error_of(http.post("/api/v2/jobs", json=body, headers=bearer("cpk_nope")), 401, "unauthorized")


def test_a_key_made_over_the_api_may_be_given_the_workflows_permission(http: httpx.Client,
                                                                      admin: dict[str, str]) -> None:
    made = http.post("/api/keys", json={"name": "api-scripts", "workflows": True}, headers=admin)
    assert made.status_code == 201 and made.json()["workflows"] is True
    job_of(http.post("/api/v2/jobs", json={"workflow": demo_invert(9)}, headers=bearer(made.json()["key"])), 201)
    plain = http.post("/api/keys", json={"name": "api-runner"}, headers=admin).json()
    assert plain["workflows"] is False
    error_of(http.post("/api/v2/jobs", json={"workflow": demo_invert(9)}, headers=bearer(plain["key"])), 403,
             "forbidden")


def test_each_refusal_is_the_contracts(server: AppServer, http: httpx.Client, workflows_key: str) -> None:
    key = bearer(workflows_key)

    def post(body: Any) -> httpx.Response:
        return http.post("/api/v2/jobs", json=body, headers=key)

    unknown = demo_invert(3)
    unknown["2"]["class_type"] = "FancyInvert"
    error = error_of(post({"workflow": unknown}), 422, "invalid_workflow")
    assert "FancyInvert" in error["message"] and "2" in error["details"]["node_errors"]
    dangling = demo_invert(3)
    dangling["3"]["inputs"]["images"] = ["9", 0]
    error = error_of(post({"workflow": dangling}), 422, "invalid_workflow")
    assert error["details"]["node_errors"]["3"][0]["field"] == "images"
    no_width = demo_invert(3)
    del no_width["1"]["inputs"]["width"]
    assert error_of(post({"workflow": no_width}), 422, "invalid_workflow")["details"]["node_errors"]["1"]

    ui = json.loads((Path(__file__).parents[1] / "publisher" / "fixtures" / "ui_demo_invert.json").read_text())
    error_of(post({"workflow": ui}), 422, "workflow_format_ui")
    error = error_of(post({"workflow": demo_invert(3), "webhook_url": "https://example.com/hook"}), 422,
                     "invalid_workflow")
    assert "webhook_url" in error["message"]
    error_of(post({"workflow": demo_invert(3), "inputs": {"a": 1}}), 422, "invalid_workflow")
    error_of(post({"workflow": demo_invert(3), "extra_data": {"client_id": "x"}}), 400, "invalid_request")
    error_of(post({"nope": 1}), 422, "invalid_workflow")
    for depth in (900, 5000):  # deep enough to parse, then too deep to parse
        deep = "[" * depth + "]" * depth
        answer = http.post("/api/v2/jobs", content='{"workflow": {"1": ' + deep + "}}",
                           headers={**key, "Content-Type": "application/json"})
        assert answer.status_code in (400, 422) and ErrorEnvelope.model_validate(answer.json())

    ref = {"__type": "core/ASSET", "info": {"id": str(uuid.uuid4())}}
    error = error_of(post({"workflow": load_invert(ref)}), 422, "missing_asset")  # type: ignore[arg-type]
    assert error["details"]["node_errors"]["1"][0]["field"] == "image"
    error_of(post({"workflow": load_invert({"__type": "core/ASSET", "info": {}})}),  # type: ignore[arg-type]
             422, "missing_asset")

    error_of(http.get("/api/v2/jobs/nope", headers=key), 404, "not_found")
    error_of(http.post("/api/v2/jobs/nope/cancel", headers=key), 404, "not_found")
    error_of(http.get("/api/v2/jobs/nope/workflow", headers=key), 404, "not_found")
    health = http.get("/api/v2/health")
    assert health.status_code == 200 and health.json()["status"] == "healthy"


def test_the_sdk_raises_its_own_errors(server: AppServer, workflows_key: str) -> None:
    client = sdk(server.url, workflows_key)
    unknown = demo_invert(4)
    unknown["2"]["class_type"] = "FancyInvert"
    with pytest.raises(InvalidWorkflow):
        client.submit(client.workflows.from_json(unknown))
    ref = {"__type": "core/ASSET", "info": {"id": str(uuid.uuid4())}}
    with pytest.raises(MissingAsset):
        client.submit(client.workflows.from_json(load_invert(ref)))  # type: ignore[arg-type]


def test_an_idempotency_key_is_single_use_and_released_by_a_refusal(http: httpx.Client, workflows_key: str) -> None:
    key = str(uuid.uuid4())
    headers = {**bearer(workflows_key), "Idempotency-Key": key}
    broken = demo_invert(5)
    broken["2"]["class_type"] = "FancyInvert"
    error_of(http.post("/api/v2/jobs", json={"workflow": broken}, headers=headers), 422, "invalid_workflow")
    job_of(http.post("/api/v2/jobs", json={"workflow": demo_invert(5)}, headers=headers), 201)  # released
    error_of(http.post("/api/v2/jobs", json={"workflow": demo_invert(5)}, headers=headers), 422,
             "idempotency_key_reuse")
    error_of(http.post("/api/v2/jobs", json={"workflow": demo_invert(6)}, headers=headers), 422,
             "idempotency_key_reuse")  # another body: refused all the same, never run


def test_the_sdk_refuses_a_reused_key(server: AppServer, workflows_key: str) -> None:
    client = sdk(server.url, workflows_key)
    key = str(uuid.uuid4())
    client.submit(client.workflows.from_json(demo_invert(7)), idempotency_key=key)
    with pytest.raises(IdempotencyKeyReuse):
        client.submit(client.workflows.from_json(demo_invert(7)), idempotency_key=key)


def test_asset_references_and_uploaded_file_names_are_the_runs_files(
        server: AppServer, http: httpx.Client, admin: dict[str, str], workflows_key: str) -> None:
    owner = key_id(http, admin, workflows_key)
    asset = store_asset(server, png((10, 20, 30)), "v2-photo.png", owner)
    client = sdk(server.url, workflows_key)
    by_ref = client.run(client.workflows.from_json(load_invert(
        {"__type": "core/ASSET", "info": {"id": asset}}, prefix="v2/ref")))  # type: ignore[arg-type]
    assert inverted(output_bytes(http, client, by_ref.id, admin)[0], (10, 20, 30))

    store_asset(server, png((100, 0, 50)), "v2-named.png", owner)
    by_name = client.run(client.workflows.from_json(load_invert("v2-named.png", prefix="v2/name")))
    assert inverted(output_bytes(http, client, by_name.id, admin)[0], (100, 0, 50))

    theirs = store_asset(server, png((1, 2, 3)), "theirs.png", None)
    with pytest.raises(MissingAsset):
        client.submit(client.workflows.from_json(load_invert(
            {"__type": "core/ASSET", "info": {"id": theirs}})))  # type: ignore[arg-type]
    # A file in the engine's input folder that this key did not upload (another run's, by its name) is not
    # read for it: only an admin key may name any file there.
    with pytest.raises(MissingAsset):
        client.submit(client.workflows.from_json(load_invert("theirs.png")))


# --- per app ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_app(http: httpx.Client, admin: dict[str, str]) -> str:
    slug = f"v2-demo-{uuid.uuid4().hex[:6]}"
    response = http.post("/api/apps", headers=admin, json={
        "name": "v2 demo", "slug": slug, "workflow": shipped("demo_invert.json"),
        "inputs": [{"node": "1", "input": "color", "name": "color"},
                   {"node": "1", "input": "width", "name": "size", "max": 256}]})
    assert response.status_code == 201, response.text
    return slug


def test_an_app_is_a_v2_base_url(server: AppServer, http: httpx.Client, demo_app: str, runner_key: str) -> None:
    base = f"{server.url}/apps/{demo_app}"
    client = sdk(base, runner_key)  # a key that may run apps, not any workflow
    graph = shipped("demo_invert.json")
    graph["1"]["inputs"]["color"] = ORANGE
    job = client.run(client.workflows.from_json(graph))
    assert job.status == "succeeded"
    raw = job_of(http.get(f"/apps/{demo_app}/api/v2/jobs/{job.id}", headers=bearer(runner_key)))
    assert raw["urls"]["self"] == f"/apps/{demo_app}/api/v2/jobs/{job.id}"
    assert inverted(output_bytes(http, client, job.id, bearer(runner_key))[0], (255, 128, 0))
    run = http.get(f"/api/runs/{job.id}", headers=bearer(runner_key)).json()
    assert run["app"] == demo_app and run["inputs"]["color"] == ORANGE  # an ordinary run of the app

    pinned = sdk(f"{base}/versions/1", runner_key).run(client.workflows.from_json(graph))
    assert pinned.status == "succeeded"
    # A job of another surface is not this app's.
    error_of(http.get(f"/apps/{demo_app}/api/v2/jobs/nope", headers=bearer(runner_key)), 404, "not_found")
    error_of(http.post("/apps/no-such-app/api/v2/jobs", json={"workflow": graph}, headers=bearer(runner_key)), 404,
             "not_found")


def test_an_app_refuses_changes_to_what_it_did_not_publish(http: httpx.Client, demo_app: str,
                                                           runner_key: str) -> None:
    url, key = f"/apps/{demo_app}/api/v2/jobs", bearer(runner_key)
    graph = shipped("demo_invert.json")
    graph["3"]["inputs"]["filename_prefix"] = "elsewhere"
    error = error_of(http.post(url, json={"workflow": graph}, headers=key), 422, "invalid_workflow")
    (problem,) = error["details"]["node_errors"]["3"]
    assert problem["field"] == "filename_prefix" and "filename_prefix" in error["message"]

    too_big = shipped("demo_invert.json")
    too_big["1"]["inputs"]["width"] = 4096
    error = error_of(http.post(url, json={"workflow": too_big}, headers=key), 422, "invalid_workflow")
    (problem,) = error["details"]["node_errors"]["1"]
    assert problem["field"] == "width" and "256" in problem["message"]

    added = shipped("demo_invert.json")
    added["9"] = {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}}
    assert "9" in error_of(http.post(url, json={"workflow": added}, headers=key), 422,
                           "invalid_workflow")["details"]["node_errors"]
    error_of(http.post(url, json={"workflow": shipped("demo_invert.json")}), 401, "unauthorized")  # a private app


def test_an_apps_file_input_takes_an_asset(server: AppServer, http: httpx.Client, admin: dict[str, str],
                                           runner_key: str) -> None:
    slug = f"v2-photo-{uuid.uuid4().hex[:6]}"
    response = http.post("/api/apps", headers=admin, json={
        "name": "v2 photo", "slug": slug, "workflow": load_invert("example.png", prefix="inv"),
        "inputs": [{"node": "1", "input": "image", "name": "photo"}]})
    assert response.status_code == 201, response.text
    asset = store_asset(server, png((40, 80, 120)), "app-photo.png", key_id(http, admin, runner_key))
    client = sdk(f"{server.url}/apps/{slug}", runner_key)
    job = client.run(client.workflows.from_json(load_invert(
        {"__type": "core/ASSET", "info": {"id": asset}}, prefix="inv")))  # type: ignore[arg-type]
    assert inverted(output_bytes(http, client, job.id, bearer(runner_key))[0], (40, 80, 120))
    by_name = client.run(client.workflows.from_json(load_invert("app-photo.png", prefix="inv")))
    assert inverted(output_bytes(http, client, by_name.id, bearer(runner_key))[0], (40, 80, 120))

    # Another key's upload, by id or by name, is not this caller's file.
    theirs = store_asset(server, png((1, 2, 3)), "their-photo.png", key_id(http, admin, admin["Authorization"][7:]))
    with pytest.raises(MissingAsset):
        client.submit(client.workflows.from_json(load_invert(
            {"__type": "core/ASSET", "info": {"id": theirs}}, prefix="inv")))  # type: ignore[arg-type]
    refused = http.post(f"/apps/{slug}/api/v2/jobs", json={"workflow": load_invert("their-photo.png", prefix="inv")},
                        headers=bearer(runner_key))
    error = error_of(refused, 422, "invalid_workflow")
    assert error["details"]["node_errors"]["1"][0]["field"] == "image"


# --- cancel and restart -----------------------------------------------------------------------------------------


def test_cancel_a_queued_and_a_running_job(server: AppServer, http: httpx.Client, workflows_key: str,
                                           sd15_checkpoint: str) -> None:
    key = bearer(workflows_key)
    slow = job_of(http.post("/api/v2/jobs", json={"workflow": txt2img(sd15_checkpoint, size=256, steps=200)},
                            headers=key), 201)
    queued = job_of(http.post("/api/v2/jobs", json={"workflow": demo_invert(8)}, headers=key), 201)
    wait_status(http, slow["urls"]["self"], key, "running")
    assert job_of(http.get(queued["urls"]["self"], headers=key))["queue_position"] is not None
    with http.stream("GET", queued["urls"]["events"], headers=key) as stream:  # a status snapshot first
        lines = stream.iter_lines()
        assert next(lines) == "event: status"
        snapshot = StatusEvent.model_validate(json.loads(next(lines)[len("data: "):]))
    assert snapshot.status.value == "queued" and snapshot.queue_position is not None

    assert job_of(http.post(queued["urls"]["cancel"], headers=key))["status"] == "canceled"
    client = sdk(server.url, workflows_key)
    statuses: list[str] = []
    follower = threading.Thread(target=lambda: statuses.extend(
        e.status for e in client.jobs.get(slow["id"]).events() if isinstance(e, StatusChange)))
    follower.start()
    time.sleep(0.5)  # the stream is open
    stopping = sdk(server.url, workflows_key).jobs.get(slow["id"]).cancel()
    assert stopping.status in ("canceling", "canceled")
    assert wait_terminal(http, slow["urls"]["self"], key)["status"] == "canceled"
    follower.join(30)
    assert statuses[0] == "running" and statuses[-1] == "canceled" and "canceling" in statuses, statuses
    assert job_of(http.post(slow["urls"]["cancel"], headers=key))["status"] == "canceled"  # idempotent


def test_a_queued_job_survives_a_restart(server: AppServer, http: httpx.Client, workflows_key: str,
                                         sd15_checkpoint: str) -> None:
    key = bearer(workflows_key)
    # Its structure's version was made by another colour: the queued job's own colour is one of its values.
    first = job_of(http.post("/api/v2/jobs", json={"workflow": demo_invert(0x00FF00, prefix="v2/after")},
                             headers=key), 201)
    assert wait_terminal(http, first["urls"]["self"], key)["status"] == "succeeded"
    slow = job_of(http.post("/api/v2/jobs", json={"workflow": txt2img(sd15_checkpoint, size=256, steps=200)},
                            headers=key), 201)
    queued = job_of(http.post("/api/v2/jobs", json={"workflow": demo_invert(ORANGE, prefix="v2/after")},
                              headers=key), 201)
    wait_status(http, slow["urls"]["self"], key, "running")
    server.stop()
    server.start()
    http.post(slow["urls"]["cancel"], headers=key)  # recovered ahead of the queue: not waited for here
    job = wait_terminal(http, queued["urls"]["self"], key)
    assert job["status"] == "succeeded" and job["outputs"]
    assert inverted(http.get(job["outputs"][0]["url"], headers=key).content, (255, 128, 0))  # the same values ran


def test_a_full_queue_is_queue_full_and_frees_the_key(tmp_path: Path, engine_url: str,
                                                         sd15_checkpoint: str) -> None:
    server = AppServer(tmp_path, comfyui_url=engine_url, extra=("--max-queue", "1")).start()
    key = bearer(server.create_key("admin", admin=True))
    try:
        with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as http:
            slow = job_of(http.post("/api/v2/jobs", json={"workflow": txt2img(sd15_checkpoint, size=256, steps=200)},
                                    headers=key), 201)
            wait_status(http, slow["urls"]["self"], key, "running")
            waiting = job_of(http.post("/api/v2/jobs", json={"workflow": demo_invert(10)}, headers=key), 201)
            retried = {**key, "Idempotency-Key": str(uuid.uuid4())}
            refused = http.post("/api/v2/jobs", json={"workflow": demo_invert(11)}, headers=retried)
            error_of(refused, 429, "queue_full")
            assert int(refused.headers["retry-after"]) >= 1
            assert job_of(http.post(waiting["urls"]["cancel"], headers=key))["status"] == "canceled"
            # Refused without a job: the same key goes through once there is room.
            job_of(http.post("/api/v2/jobs", json={"workflow": demo_invert(11)}, headers=retried), 201)
            http.post(slow["urls"]["cancel"], headers=key)
    finally:
        server.stop()


def test_no_v2_error_escapes_as_a_plain_failure(http: httpx.Client, workflows_key: str) -> None:
    """Sanity of the envelope on a route the v2 router does not have."""
    error_of(http.get("/api/v2/nothing-here", headers=bearer(workflows_key)), 404, "not_found")
