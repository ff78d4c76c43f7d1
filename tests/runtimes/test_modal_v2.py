"""A deployment's endpoint as a Comfy API v2 base URL, driven by the real comfy-sdk: the generated bundle's worker
class on the real engine, its endpoint served with uvicorn on loopback. Only Modal's spawn/FunctionCall edge is
replaced (LocalJobs) and the shared modal.Dict (MemoryKV). Every JSON answer is checked against the SDK's models
(comfy_low.models, generated from the contract)."""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from comfy_low import models as wire
from comfy_sdk import Comfy, OutputReady, StatusChange
from comfy_sdk.exceptions import ComfyError

from publisher import AppInput, AppSpec
from publisher.appspec import AppOutput
from runtimes.engine.install import EngineInstall
from runtimes.engine.process import free_port
from runtimes.modal.container.endpoint import create_endpoint
from runtimes.modal.container.jobs import LocalJobs
from runtimes.modal.container.v2store import CHUNK_BYTES, AssetStore, MemoryKV, ModalDictKV
from runtimes.modal.host.generate import generate
from runtimes.modal.host.settings import DeploySettings
from tests.runtimes.modal_support import import_bundle
from tests.support.run_requests import image_of, png

KEY = "test-v2-endpoint-key-" + "y" * 20
AUTH = {"Authorization": f"Bearer {KEY}"}
WORKFLOW = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
    "2": {"class_type": "ImageScaleBy", "inputs": {"image": ["1", 0], "upscale_method": "nearest-exact",
                                                   "scale_by": 1.0}},
    "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
    "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "v2"}},
}
COLOR = (10, 20, 30)
INVERTED = (245, 235, 225)


def scale_app() -> AppSpec:
    """LoadImage -> ImageScaleBy -> ImageInvert -> SaveImage; published: the image and the scale."""
    return AppSpec(workflow=copy.deepcopy(WORKFLOW),
                   inputs=(AppInput(node="1", input="image", type="image", name="image", default="example.png"),
                           AppInput(node="2", input="scale_by", type="float", name="scale", min=0.5, max=4.0)),
                   outputs=(AppOutput("4", "image", "Image"),))


class _Serving:
    """FastAPI apps served by uvicorn in one background thread and event loop (the SDK's client is synchronous)."""

    def __init__(self, *apps: Any) -> None:
        self.servers = [uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
                        for app in apps]
        self.urls = [f"http://127.0.0.1:{s.config.port}" for s in self.servers]
        self.thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _serve(self) -> None:
        await asyncio.gather(*(server.serve() for server in self.servers))

    def __enter__(self) -> _Serving:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not all(s.started for s in self.servers):
            assert time.monotonic() < deadline and self.thread.is_alive(), "the endpoint did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self.servers:
            server.should_exit = True
        self.thread.join(30)


class Deployment:
    def __init__(self, url: str, other: str, held: threading.Event, spec: AppSpec) -> None:
        self.url, self.other, self.held, self.spec = url, other, held, spec


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, engine_install: EngineInstall) -> Iterator[Deployment]:
    """The generated worker class on the real engine, and two endpoint containers of one deployment sharing its
    state (as the generated app shares a modal.Dict). While `held` is set, runs wait for a worker (queued)."""
    bundle_dir = tmp_path_factory.mktemp("v2-bundle")
    settings = DeploySettings(memory_snapshot=False)
    module = import_bundle(generate(scale_app(), settings, slug="scale", version=1, title="Scale"), bundle_dir)
    overrides = {"COMFY_PUBLISHER_COMFYUI_DIR": str(engine_install.comfyui_dir),
                 "COMFY_PUBLISHER_PYTHON": str(engine_install.python),
                 "COMFY_PUBLISHER_BASE_DIR": str(tmp_path_factory.mktemp("v2-container-base")),
                 "COMFY_PUBLISHER_SPEC_FILE": str(bundle_dir / "app_spec.json")}
    held = threading.Event()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in overrides.items():
            patch.setenv(name, value)
        worker = module.ComfyWorker._get_user_cls()()
        worker.start_engine()  # @modal.enter()

        async def run(payload: dict[str, Any]) -> dict[str, Any]:
            while held.is_set():  # Modal: no container free yet
                await asyncio.sleep(0.02)
            return await worker.run(payload)

        jobs, state = LocalJobs(run), MemoryKV()
        spec = worker.worker.spec
        endpoints = [create_endpoint(spec, jobs, key=KEY, state=state) for _ in range(2)]
        try:
            with _Serving(*endpoints) as serving:
                patch.setenv("COMFY_BASE_URL", serving.urls[0])
                yield Deployment(serving.urls[0], serving.urls[1], held, spec)
        finally:
            worker.stop_engine()  # @modal.exit()


@pytest.fixture(scope="module")
def client(deployment: Deployment) -> Iterator[Comfy]:
    with Comfy(api_key=KEY) as comfy:
        yield comfy


@pytest.fixture
def http(deployment: Deployment) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=deployment.url, headers=AUTH, trust_env=False, timeout=60) as raw:
        yield raw


def valid(model: type, response: httpx.Response, status: int) -> dict[str, Any]:
    """The answer, checked: its status and its shape against the contract's model."""
    assert response.status_code == status, response.text
    body = response.json()
    model.model_validate(body)
    return body


def test_an_uploaded_image_runs_by_asset_handle_with_a_changed_published_input(client: Comfy,
                                                                              http: httpx.Client) -> None:
    asset = client.assets.from_bytes(png(COLOR), filename="handle.png")
    workflow = client.workflows.from_json(http.get("/api/app").json()["workflow"])  # where a client starts
    workflow.set_input("1", "image", asset)
    workflow.set_input("2", "scale_by", 2.0)
    job = client.run(workflow).wait(timeout=120)
    assert job.status == "succeeded", job.error
    (output,) = job.outputs
    assert output.node_id == "4" and output.type == "image" and output.content_type == "image/png"
    image = image_of(output.to_bytes())
    assert image.size == (32, 32) and image.getpixel((5, 5)) == INVERTED
    sent = job.get_workflow()
    assert sent.format == "api" and sent.graph["2"]["inputs"]["scale_by"] == 2.0
    assert sent.graph["1"]["inputs"]["image"]["info"]["id"] == asset.id


def test_the_same_bytes_are_stored_once_and_run_by_file_name(client: Comfy, http: httpx.Client) -> None:
    data = png((255, 0, 255), size=8)
    first = client.assets.from_bytes(data, filename="by-name.png")
    first.commit()
    assert first.created_new is True
    again = client.assets.from_bytes(data, filename="by-name.png")
    assert again.commit() == first.id  # the dedup fast path: HEAD by-hash, then from-hash
    assert http.head(f"/api/v2/assets/by-hash/{first.hash}").status_code == 200
    valid(wire.Asset, http.get(f"/api/v2/assets/{first.id}"), 200)
    graph = copy.deepcopy(WORKFLOW)
    graph["1"]["inputs"]["image"] = "by-name.png"
    job = client.run(client.workflows.from_json(graph)).wait(timeout=120)
    assert job.status == "succeeded", job.error
    assert image_of(job.outputs[0].to_bytes()).getpixel((0, 0)) == (0, 255, 0)


def test_events_start_with_a_status_and_send_each_output_before_the_terminal_status(
        client: Comfy, deployment: Deployment, http: httpx.Client) -> None:
    asset = client.assets.from_bytes(png(COLOR), filename="events.png")
    workflow = client.workflows.from_json(copy.deepcopy(WORKFLOW))
    workflow.set_input("1", "image", asset)
    deployment.held.set()  # queued until the stream is open: its first frame is the snapshot
    try:
        job = client.submit(workflow)
        events = job.events()
        first = next(events)
    finally:
        deployment.held.clear()
    rest = list(events)
    assert isinstance(first, StatusChange) and first.status == "queued"
    assert isinstance(rest[-1], StatusChange) and rest[-1].status == "succeeded"
    (ready,) = [e for e in rest if isinstance(e, OutputReady)]
    assert image_of(ready.output.to_bytes()).getpixel((0, 0)) == INVERTED
    # The raw frames of a finished job, against the contract's models: each output, then the terminal status.
    with http.stream("GET", f"/api/v2/jobs/{job.id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        frames = [json.loads(line[5:]) for line in stream.iter_lines() if line.startswith("data:")]
    wire.Output.model_validate(frames[0])
    assert wire.StatusEvent.model_validate(frames[-1]).status.value == "succeeded"
    body = valid(wire.Job, http.get(f"/api/v2/jobs/{job.id}"), 200)
    assert body["outputs"][0] == frames[0] and body["urls"]["events"] == f"/api/v2/jobs/{job.id}/events"


def test_a_queued_job_is_cancelled(client: Comfy, deployment: Deployment, http: httpx.Client) -> None:
    asset = client.assets.from_bytes(png(COLOR), filename="cancel.png")
    workflow = client.workflows.from_json(copy.deepcopy(WORKFLOW))
    workflow.set_input("1", "image", asset)
    deployment.held.set()
    try:
        job = client.submit(workflow)
        assert job.status == "queued"
        job.cancel()
        assert job.status in ("canceling", "canceled")
    finally:
        deployment.held.clear()
    assert job.wait(timeout=30).status == "canceled"
    body = valid(wire.Job, http.post(f"/api/v2/jobs/{job.id}/cancel"), 200)  # idempotent: the terminal state
    assert body["status"] == "canceled" and body["outputs"] == []


def test_state_is_shared_by_the_deployments_endpoint_containers(client: Comfy, deployment: Deployment) -> None:
    asset = client.assets.from_bytes(png(COLOR), filename="shared.png")
    workflow = client.workflows.from_json(copy.deepcopy(WORKFLOW))
    workflow.set_input("1", "image", asset)
    job = client.run(workflow).wait(timeout=120)
    assert job.status == "succeeded", job.error
    with httpx.Client(base_url=deployment.other, headers=AUTH, trust_env=False) as other:
        assert valid(wire.Job, other.get(f"/api/v2/jobs/{job.id}"), 200)["outputs"][0]["id"] == job.outputs[0].id
        content = other.get(f"/api/v2/assets/{job.outputs[0].id}/content")
        assert content.status_code == 200 and image_of(content.content).getpixel((0, 0)) == INVERTED
        assert valid(wire.Asset, other.get(f"/api/v2/assets/{asset.id}"), 200)["file_path"] == "shared.png"
        in_use = other.delete(f"/api/v2/assets/{job.outputs[0].id}")  # an output, while its job is kept
        assert valid(wire.ErrorEnvelope, in_use, 409)["error"]["code"] == "asset_in_use"


def test_a_changed_unpublished_input_is_refused_naming_node_and_input(client: Comfy, http: httpx.Client) -> None:
    graph = copy.deepcopy(WORKFLOW)
    graph["2"]["inputs"]["upscale_method"] = "bicubic"
    graph["2"]["inputs"]["scale_by"] = 100.0
    with pytest.raises(ComfyError) as refused:
        client.submit(client.workflows.from_json(graph))
    assert refused.value.code == "invalid_workflow"
    body = valid(wire.ErrorEnvelope, http.post("/api/v2/jobs", json={"workflow": graph}), 422)
    scale, method = sorted(body["error"]["details"]["node_errors"]["2"], key=lambda e: e["field"])
    assert (scale["field"], scale["reason"]) == ("scale_by", "invalid_value") and "4" in scale["message"]
    assert (method["field"], method["reason"]) == ("upscale_method", "input_not_published")
    assert method["allowed"] == "nearest-exact" and "must stay" in method["message"]
    # A graph that is not the app's at all: a node added.
    extra = copy.deepcopy(WORKFLOW) | {"9": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}}}
    body = valid(wire.ErrorEnvelope, http.post("/api/v2/jobs", json={"workflow": extra}), 422)
    assert body["error"]["details"]["node_errors"]["9"][0]["reason"] == "node_added"


def test_each_refusal_answers_in_the_envelope(deployment: Deployment, http: httpx.Client) -> None:
    with httpx.Client(base_url=deployment.url, trust_env=False) as anonymous:
        assert anonymous.get("/api/v2/health").json() == {"status": "healthy"}
        none = valid(wire.ErrorEnvelope, anonymous.post("/api/v2/jobs", json={"workflow": WORKFLOW}), 401)
        assert none["error"]["code"] == "unauthorized"
        wrong = anonymous.get("/api/v2/jobs/x", headers={"Authorization": "Bearer nope"})
        assert valid(wire.ErrorEnvelope, wrong, 401)["error"]["code"] == "unauthorized"
    missing = copy.deepcopy(WORKFLOW)
    missing["1"]["inputs"]["image"] = {"__type": "core/ASSET", "info": {"id": "no-such-asset"}}
    body = valid(wire.ErrorEnvelope, http.post("/api/v2/jobs", json={"workflow": missing}), 422)
    assert body["error"]["code"] == "missing_asset" and "node 1 input 'image'" in body["error"]["message"]
    unknown = copy.deepcopy(WORKFLOW)
    unknown["1"]["inputs"]["image"] = "never-uploaded.png"
    body = valid(wire.ErrorEnvelope, http.post("/api/v2/jobs", json={"workflow": unknown}), 422)
    assert body["error"]["code"] == "missing_asset" and "never-uploaded.png" in body["error"]["message"]
    ui = {"nodes": [], "links": [], "version": 0.4}
    assert valid(wire.ErrorEnvelope, http.post("/api/v2/jobs", json={"workflow": ui}), 422)["error"]["code"] \
        == "workflow_format_ui"
    # The submission's shape is read as the app and comfy-api-proxy read it: the same codes.
    for refused, code in (({}, "invalid_workflow"), ({"workflow": WORKFLOW, "inputs": {"x": 1}}, "invalid_workflow"),
                          ({"workflow": WORKFLOW, "extra_data": {"other": "x"}}, "invalid_request")):
        assert valid(wire.ErrorEnvelope, http.post("/api/v2/jobs", json=refused), 422)["error"]["code"] == code
    assert valid(wire.ErrorEnvelope, http.get("/api/v2/jobs/nope"), 404)["error"]["code"] == "not_found"
    assert valid(wire.ErrorEnvelope, http.get("/api/v2/assets/nope"), 404)["error"]["code"] == "not_found"
    hash_miss = "blake3:" + "0" * 64
    assert http.head(f"/api/v2/assets/by-hash/{hash_miss}").status_code == 404
    body = valid(wire.ErrorEnvelope, http.post("/api/v2/assets/from-hash", json={"hash": hash_miss}), 404)
    assert body["error"]["code"] == "blob_not_found"
    malformed = http.post("/api/v2/assets/from-hash", json={"hash": "md5:abc"})
    assert valid(wire.ErrorEnvelope, malformed, 404)["error"]["code"] == "blob_not_found"
    # What JSON allows and the answer could not carry: refused, never a server error.
    nan = http.post("/api/v2/jobs", content=json.dumps({"workflow": WORKFLOW}).replace("1.0", "NaN"),
                    headers={"Content-Type": "application/json"})
    assert "NaN" in valid(wire.ErrorEnvelope, nan, 422)["error"]["message"]
    surrogate = http.post("/api/v2/assets/from-hash", content=b'{"hash": "%s", "file_path": "a\\ud800.png"}'
                          % hash_miss.encode(), headers={"Content-Type": "application/json"})
    assert valid(wire.ErrorEnvelope, surrogate, 422)["error"]["code"] == "invalid_request"
    not_json = http.post("/api/v2/jobs", content=b"{", headers={"Content-Type": "application/json"})
    assert valid(wire.ErrorEnvelope, not_json, 422)["error"]["code"] == "invalid_request"


def test_idempotency_keys_are_single_use(client: Comfy, http: httpx.Client) -> None:
    asset = client.assets.from_bytes(png(COLOR), filename="idem.png")
    graph = copy.deepcopy(WORKFLOW)
    graph["1"]["inputs"]["image"] = asset.as_reference()
    headers = {"Idempotency-Key": "key-" + asset.id}
    bad = copy.deepcopy(graph)
    bad["4"]["inputs"]["filename_prefix"] = "elsewhere"
    assert http.post("/api/v2/jobs", json={"workflow": bad}, headers=headers).status_code == 422  # not claimed
    first = valid(wire.Job, http.post("/api/v2/jobs", json={"workflow": graph}, headers=headers), 201)
    again = valid(wire.ErrorEnvelope, http.post("/api/v2/jobs", json={"workflow": graph}, headers=headers), 422)
    assert again["error"]["code"] == "idempotency_key_reuse"
    assert client.jobs.get(first["id"]).wait(timeout=120).status == "succeeded"


def test_uploads_are_checked_and_served_with_ranges(http: httpx.Client) -> None:
    data = png((1, 2, 3), size=12)
    files = {"file": ("ranged.png", data, "image/png")}
    form = {"content_type": "image/png", "file_path": "ranged.png"}
    asset = valid(wire.Asset, http.post("/api/v2/assets", files=files, data=form), 201)
    assert asset["size_bytes"] == len(data) and asset["content_type"] == "image/png"
    part = http.get(f"/api/v2/assets/{asset['id']}/content", headers={"Range": "bytes=0-7"})
    assert part.status_code == 206 and part.content == data[:8]
    assert part.headers["content-range"] == f"bytes 0-7/{len(data)}"
    named = valid(wire.Asset, http.post("/api/v2/assets", files={"file": ("été.png", data, "image/png")},
                                        data={"content_type": "image/png", "file_path": "été \"1\".png"}), 200)
    assert named["created_new"] is False  # the same bytes: one blob, a second asset
    disposition = http.get(f"/api/v2/assets/{named['id']}/content").headers["content-disposition"]
    assert disposition == "inline; filename=\"_t_ _1_.png\"; filename*=UTF-8''%C3%A9t%C3%A9%20%221%22.png"
    assert http.get(f"/api/v2/assets/{asset['id']}/content", headers={"Range": "bytes=9999-"}).status_code == 416
    mismatch = http.post("/api/v2/assets", files=files, data=form | {"expected_hash": "blake3:" + "1" * 64})
    assert valid(wire.ErrorEnvelope, mismatch, 409)["error"]["code"] == "hash_mismatch"
    text = http.post("/api/v2/assets", files={"file": ("notes.png", b"not an image", "image/png")},
                     data={"content_type": "image/png", "file_path": "notes.png"})
    assert "not an image" in valid(wire.ErrorEnvelope, text, 422)["error"]["message"]
    climbing = http.post("/api/v2/assets", files=files, data={"content_type": "image/png", "file_path": "../x.png"})
    assert "'..'" in valid(wire.ErrorEnvelope, climbing, 422)["error"]["message"]
    assert http.delete(f"/api/v2/assets/{asset['id']}").status_code == 204
    assert http.delete(f"/api/v2/assets/{asset['id']}").status_code == 404


async def test_an_upload_over_the_limit_is_refused() -> None:
    endpoint = create_endpoint(scale_app(), LocalJobs(_never), key=KEY, max_upload_bytes=1024)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=endpoint), base_url="http://deployment",
                                 headers=AUTH) as http:
        fields = {"content_type": "image/png", "file_path": "big.png"}
        for padding in (2048, 100_000):  # a file over the limit; a body past it, read no further
            form = {"files": {"file": ("big.png", png((9, 9, 9), size=64) + b"\0" * padding, "image/png")},
                    "data": fields}
            declared = await http.post("/api/v2/assets", **form)
            assert declared.status_code == 413 and "1024 bytes" in declared.json()["error"]["message"]
            wire.ErrorEnvelope.model_validate(declared.json())
            request = httpx.Request("POST", "http://deployment/api/v2/assets", **form)
            body = request.read()

            async def chunked(body: bytes = body) -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
                for start in range(0, len(body), 4096):
                    yield body[start:start + 4096]

            undeclared = await http.post("/api/v2/assets", content=chunked(),
                                         headers={"Content-Type": request.headers["Content-Type"]})
            assert undeclared.status_code == 413 and undeclared.json()["error"]["code"] == "payload_too_large"
        small = await http.post("/api/v2/assets", files={"file": ("s.png", png((1, 1, 1), size=2), "image/png")},
                                data=fields)
        assert small.status_code == 201, small.text


class _ModalUnreachable:
    """The Modal edge when Modal does not answer (it cannot be made to fail here for real)."""

    async def spawn(self, payload: dict[str, Any]) -> str:
        raise ConnectionError("Could not connect to the Modal server.")

    async def result(self, call_id: str) -> dict[str, Any] | None:
        raise AssertionError("no job was created")

    async def cancel(self, call_id: str) -> None:
        raise AssertionError("no job was created")


async def test_a_job_modal_cannot_take_is_an_upstream_error_and_frees_its_key() -> None:
    endpoint = create_endpoint(scale_app(), _ModalUnreachable(), key=KEY)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=endpoint), base_url="http://deployment",
                                 headers=AUTH) as http:
        await http.post("/api/v2/assets", files={"file": ("in.png", png(COLOR), "image/png")},
                        data={"content_type": "image/png", "file_path": "in.png"})
        graph = copy.deepcopy(WORKFLOW)
        graph["1"]["inputs"]["image"] = "in.png"
        for _ in range(2):  # the key is released: the retry is not refused as a reuse
            answer = await http.post("/api/v2/jobs", json={"workflow": graph}, headers={"Idempotency-Key": "k1"})
            assert answer.status_code == 500 and answer.json()["error"]["code"] == "upstream_error"
            assert "Modal" not in answer.text  # a generic message: the cause goes to the log only


async def _never(payload: dict[str, Any]) -> dict[str, Any]:
    raise AssertionError("no run expected")


def test_the_generated_app_keeps_v2_state_in_a_modal_dict(tmp_path: Any) -> None:
    import modal

    slug = "a-very-long-app-slug-" + "x" * 60
    module = import_bundle(generate(scale_app(), DeploySettings(), slug=slug, version=1, title="Long"), tmp_path)
    assert isinstance(module.v2_state, modal.Dict)
    assert module.v2_state.name.endswith("-v2") and len(module.v2_state.name) < 64  # Modal's limit on names
    source = (tmp_path / "modal_app.py").read_text()
    assert "state=ModalDictKV(v2_state)" in source


class _DictStandIn:
    """modal.Dict's async surface (get/put/pop with .aio), which cannot run here without a Modal account."""

    def __init__(self) -> None:
        self.items: dict[str, Any] = {}
        self.get, self.put, self.pop = _aio(self._get), _aio(self._put), _aio(self._pop)

    def _get(self, key: str, default: Any = None) -> Any:
        return self.items.get(key, default)

    def _put(self, key: str, value: Any, *, skip_if_exists: bool = False) -> bool:
        if skip_if_exists and key in self.items:
            return False
        self.items[key] = value
        return True

    def _pop(self, key: str, default: Any = None) -> Any:
        return self.items.pop(key, default)


def _aio(function: Any) -> Any:
    async def aio(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    holder = type("Method", (), {})()
    holder.aio = aio
    return holder


@pytest.mark.parametrize("make", [MemoryKV, lambda: ModalDictKV(_DictStandIn())], ids=["memory", "modal-dict"])
async def test_store_entries_expire_and_if_absent_claims_once(make: Any) -> None:
    kv = make()
    now = time.time()
    assert await kv.put("k", {"a": 1}, expires_at=now + 60)
    assert await kv.get("k") == {"a": 1}
    assert not await kv.put("k", "other", expires_at=now + 60, if_absent=True)
    await kv.put("old", "gone", expires_at=now - 1)
    assert await kv.get("old") is None
    assert await kv.put("old", "claimed", expires_at=now + 60, if_absent=True)  # an expired entry holds no key
    await kv.delete("k")
    assert await kv.get("k") is None
    store = AssetStore(kv, max_bytes=10 * CHUNK_BYTES)
    data = bytes(range(256)) * (CHUNK_BYTES // 256 * 2 + 3)  # three chunks
    record, new = await store.add(data, content_type="image/png", file_path="big.png", expires_at=now + 60)
    again, new_again = await store.add(data, content_type="image/png", file_path="big.png", expires_at=now + 120)
    assert (new, new_again) == (True, False) and again.id != record.id and again.hash == record.hash
    assert await store.read(record) == data and (await store.blob(record.hash) or {})["chunks"] == 3
