"""The RunPod worker's handler: the request shapes and the output encoding on their own (no engine), then the
handler as the generated handler.py runs it, under the runpod SDK's own local API server (`--rp_serve_api`),
against the real bundled engine. What cannot run here is replaced by loopback servers that speak its protocol: an
S3 bucket (PUT, presigned GET) and RunPod's job-done URL (where progress_update posts)."""

from __future__ import annotations

import asyncio
import base64
import copy
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image
from runpod.serverless.modules import rp_http

from publisher import AppInput, AppSpec
from publisher.appspec import AppOutput
from runtimes.comfy.events import Progress
from runtimes.engine.install import EngineInstall
from runtimes.engine.process import free_port
from runtimes.inputs import ImageLimits
from runtimes.runpod.container.handler import make_handler, prepare_models, use_models_dir
from runtimes.runpod.container.outputs import Bucket, BucketError, failure_output, success_output
from runtimes.runpod.container.progress import ProgressReporter
from runtimes.runpod.container.request import RequestRefused, run_request
from runtimes.serverless.wire import outcome_to_result
from runtimes.serverless.worker import EngineWorker, WorkerPaths
from tests.support.media import wav_bytes
from tests.support.paths import REPO
from tests.support.run_requests import image_of, inverted, png

# The app: a canvas of `color` with `photo` pasted at its top-left corner, inverted. One run shows both inputs:
# pixel (0, 0) is the photo's, pixel (15, 15) the canvas's.
WORKFLOW = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 0}},
    "2": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
    "3": {"class_type": "ImageCompositeMasked", "inputs": {"destination": ["1", 0], "source": ["2", 0], "x": 0,
                                                          "y": 0, "resize_source": False}},
    "4": {"class_type": "ImageInvert", "inputs": {"image": ["3", 0]}},
    "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "rp"}},
}
INPUTS = (AppInput(node="1", input="color", type="int", name="color", min=0, max=0xFFFFFF),
          AppInput(node="2", input="image", type="image", name="photo"))
PHOTO = (200, 100, 50)


def photo_spec() -> AppSpec:
    return AppSpec(workflow=copy.deepcopy(WORKFLOW), inputs=INPUTS, outputs=(AppOutput("5", "image", "Image"),))


def sound_spec() -> AppSpec:
    """The same app with a sound input too (never run: the request checks only)."""
    workflow = {**copy.deepcopy(WORKFLOW), "6": {"class_type": "LoadAudio", "inputs": {"audio": "tone.wav"}}}
    return AppSpec(workflow=workflow, inputs=(*INPUTS, AppInput(node="6", input="audio", type="audio", name="sound")),
                   outputs=(AppOutput("5", "image", "Image"),))


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def photo(color: tuple[int, int, int] = PHOTO) -> bytes:
    return png(color, size=8)


def huge_image() -> bytes:
    """5000 x 5000 pixels in a few KB: over the pixel cap, far under the byte cap."""
    out = io.BytesIO()
    Image.new("1", (5000, 5000)).save(out, format="PNG")
    return out.getvalue()


def graph(**changes: dict[str, Any]) -> dict[str, Any]:
    """The app's workflow as a worker-comfyui client sends it, with node inputs changed (node id -> inputs)."""
    workflow = copy.deepcopy(WORKFLOW)
    for node, inputs in changes.items():
        workflow[node]["inputs"].update(inputs)
    return workflow


async def refusal(job_input: Any, spec: AppSpec | None = None, **limits: int) -> dict[str, Any]:
    with pytest.raises(RequestRefused) as caught:
        await run_request(spec or photo_spec(), {"id": "job-1", "input": job_input}, ImageLimits(**limits))
    return caught.value.record


# --- the request shapes (no engine) -----------------------------------------------------------------------------


async def test_typed_shape_takes_values_and_files_as_the_typed_api_does() -> None:
    request = await run_request(photo_spec(), {"id": "job-1", "input": {"inputs": {"color": 7, "photo": data_url(
        photo())}, "run_id": "run_1"}})
    assert request.run_id == "run_1" and request.values == {"color": 7}
    (filename, data), = request.uploads.values()
    assert filename.endswith(".png") and image_of(data).getpixel((0, 0)) == PHOTO
    # JSON text as the input, no run id: one derived from the job's, unique per run (a retried job runs anew)
    again = await run_request(photo_spec(), {"id": "sync-ab.c", "input": json.dumps({"inputs": {"color": 7}})})
    other = await run_request(photo_spec(), {"id": "sync-ab.c", "input": {"inputs": {"color": 7}}})
    assert again.run_id.startswith("sync-ab_c-") and again.run_id != other.run_id and again.uploads == {}


async def test_workflow_shape_binds_each_image_to_the_input_that_names_it() -> None:
    job = {"workflow": graph(**{"1": {"color": 9}, "2": {"image": "input_image_1.png"}}),
           "images": [{"name": "input_image_1.png", "image": data_url(photo())}]}
    request = await run_request(photo_spec(), {"id": "job-1", "input": job})
    assert request.values == {"color": 9} and list(request.uploads) == ["photo"]
    assert image_of(request.uploads["photo"][1]).getpixel((0, 0)) == PHOTO
    # the app's own file name keeps the app's file; an image sent under that name replaces it (worker-comfyui
    # uploads with overwrite)
    own = await run_request(photo_spec(), {"id": "job-2", "input": {"workflow": graph()}})
    assert own.uploads == {} and own.values == {"color": 0}
    replaced = await run_request(photo_spec(), {"id": "job-3", "input": {
        "workflow": graph(), "images": [{"name": "photo.png", "image": b64(photo())}]}})
    assert list(replaced.uploads) == ["photo"]


async def test_a_graph_that_is_not_the_apps_is_refused_naming_node_and_input() -> None:
    changed = await refusal({"workflow": graph(**{"3": {"x": 4}})})
    assert changed["type"] == "invalid_workflow"
    assert "node 3 (ImageCompositeMasked) input 'x' is not an input of this app: it must stay 0, not 4" \
        in changed["message"]
    assert changed["details"]["node_errors"]["3"][0]["field"] == "x"
    added = await refusal({"workflow": {**graph(), "9": {"class_type": "ImageInvert", "inputs": {"image": ["4", 0]}}}})
    assert "node 9 (ImageInvert) is not in the app's workflow" in added["message"]
    ui = await refusal({"workflow": {"nodes": [], "links": []}})
    assert ui["type"] == "invalid_workflow" and "UI" in ui["message"]


async def test_uploads_are_checked_by_the_kind_of_their_input() -> None:
    text = await refusal({"workflow": graph(**{"2": {"image": "a.png"}}),
                          "images": [{"name": "a.png", "image": b64(b"just some text, not a picture")}]})
    assert text["type"] == "input_error"
    assert "node 2 input 'image' (the app's input 'photo'): \"a.png\" is not an image this app accepts" \
        in text["message"]
    pixels = await refusal({"inputs": {"photo": b64(huge_image())}})
    assert "too many pixels" in pixels["message"] and pixels["details"]["errors"][0]["input"] == "photo"
    large = await refusal({"workflow": graph(**{"2": {"image": "a.png"}}),
                           "images": [{"name": "a.png", "image": b64(photo())}]}, max_bytes=40)
    assert "is larger than" in large["message"]
    # a sound input takes a sound, whatever the entry is called
    sound = sound_spec()
    ok = await run_request(sound, {"id": "j", "input": {"workflow": {**graph(), "6": {
        "class_type": "LoadAudio", "inputs": {"audio": "voice.png"}}}, "images": [
        {"name": "voice.png", "image": b64(wav_bytes())}]}})
    assert ok.uploads["sound"][0].endswith(".wav")
    png_as_sound = await refusal({"inputs": {"sound": b64(photo())}}, sound)
    assert "sound: \"upload\" is not a audio file this app accepts: its content is an image (png)" \
        in png_as_sound["message"]


async def test_images_must_be_used_and_named_files_must_be_sent() -> None:
    unused = await refusal({"workflow": graph(), "images": [{"name": "other.png", "image": b64(photo())}]})
    assert "'images' has \"other.png\", which no published input of the workflow names" in unused["message"]
    assert "'photo' (node 2 input 'image'" in unused["message"]
    missing = await refusal({"workflow": graph(**{"2": {"image": "mine.png"}})})
    assert "names no entry of 'images'" in missing["message"] and "mine.png" in missing["message"]
    shape = await refusal({"workflow": graph(), "images": [{"name": "a.png"}]})
    assert shape["message"].startswith("'images' must be a list of objects with 'name' and 'image' keys")


async def test_bad_requests_say_what_to_send() -> None:
    for job_input, said in [
        (None, "The job has no input object"),
        ("{not json", "not valid JSON"),
        ({"prompt": {}}, "neither 'inputs' nor 'workflow'"),
        ({"inputs": {}, "workflow": graph()}, "'inputs' and 'workflow' are two shapes"),
        ({"inputs": [1, 2]}, "'inputs' must be an object"),
        ({"inputs": {"color": "red"}}, "color"),
        ({"inputs": {"colour": 1}}, "colour"),
        ({"inputs": {}, "run_id": "../x"}, "'run_id': run id must be"),
        ({"workflow": graph(), "comfy_org_api_key": "k"}, "runs no API nodes"),
        ({"workflow": "/etc/passwd"}, "'workflow' must be the app's API-format graph"),
    ]:
        record = await refusal(job_input)
        assert said in record["message"], (job_input, record)
        assert record["type"] in ("invalid_request", "input_error")


# --- the output (no engine) -------------------------------------------------------------------------------------


RESULT = {"status": "succeeded", "run_id": "r1", "applied": {"color": 1}, "exec_ms": 12.5, "outputs": [
    {"node_id": "5", "filename": "rp_00001_.png", "kind": "image", "mime": "image/png", "data": b64(photo())},
    {"node_id": "7", "filename": "tone.wav", "kind": "audio", "mime": "audio/wav", "data": b64(b"RIFF...")},
    {"node_id": "5", "filename": "rp_00002_.png", "kind": "image", "mime": "image/png", "data": b64(b"\x89PNG")},
]}


async def test_outputs_come_as_worker_comfyui_returns_them_with_their_order() -> None:
    output = await success_output(RESULT, "job-1", None)
    assert [(i["filename"], i["type"], i["index"], i["node_id"]) for i in output["images"]] == [
        ("rp_00001_.png", "base64", 0, "5"), ("rp_00002_.png", "base64", 2, "5")]
    assert output["files"] == [{"filename": "tone.wav", "type": "base64", "data": b64(b"RIFF..."), "node_id": "7",
                                "kind": "audio", "mime": "audio/wav", "index": 1}]
    assert {k: output[k] for k in ("status", "run_id", "applied", "exec_ms")} == {
        "status": "succeeded", "run_id": "r1", "applied": {"color": 1}, "exec_ms": 12.5}
    failed = failure_output({"type": "timeout", "message": "took too long"}, run_id="r1", status="timed_out")
    assert failed["error"] == "took too long" and failed["status"] == "timed_out" and "refresh_worker" not in failed


class _Bucket(BaseHTTPRequestHandler):
    """An S3-compatible bucket as boto3 talks to one: PUT an object, GET it (by a presigned URL)."""

    protocol_version = "HTTP/1.1"  # boto3 sends "Expect: 100-continue" with a PUT
    objects: ClassVar[dict[str, tuple[str, bytes]]] = {}

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.objects[urlsplit(self.path).path] = (self.headers.get("Content-Type", ""), body)
        self.send_response(200)
        self.send_header("ETag", '"etag"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        found = self.objects.get(urlsplit(self.path).path)
        signed = "X-Amz-Signature" in parse_qs(urlsplit(self.path).query)
        self.send_response(200 if found and signed else 403)
        body = found[1] if found and signed else b""
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def loopback() -> Iterator[tuple[str, type[BaseHTTPRequestHandler]]]:
    """A loopback HTTP server of a handler class (a fresh subclass, so its state is this test's)."""
    holder: dict[str, Any] = {}

    def serve(handler: type[BaseHTTPRequestHandler]) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        holder["server"] = server
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve  # type: ignore[misc]
    if "server" in holder:
        holder["server"].shutdown()


async def test_outputs_go_to_the_bucket_when_one_is_configured(loopback: Any) -> None:
    handler = type("Bucket", (_Bucket,), {"objects": {}})
    url = loopback(handler)
    secret = "s3cr3t-" + "k" * 30
    env = {"BUCKET_ENDPOINT_URL": url, "BUCKET_ACCESS_KEY_ID": "AKIDEXAMPLE", "BUCKET_SECRET_ACCESS_KEY": secret}
    bucket = Bucket.of_job({"id": "job-9"}, env)
    assert bucket is not None and secret not in repr(bucket)
    output = await success_output(RESULT, "job-9", bucket)
    first = output["images"][0]
    assert first["type"] == "s3_url" and first["data"].startswith(f"{url}/{time.strftime('%m-%y')}/job-9/")
    assert secret not in first["data"]
    fetched = httpx.get(first["data"], trust_env=False)
    assert fetched.status_code == 200 and image_of(fetched.content).getpixel((0, 0)) == PHOTO
    types = {path.rsplit(".", 1)[-1]: mime for path, (mime, _) in handler.objects.items()}
    assert types == {"png": "image/png", "wav": "audio/wav"}
    # the job's own s3Config wins, with its bucket
    job_bucket = Bucket.of_job({"s3Config": {"endpointUrl": url, "accessId": "a", "accessSecret": "b",
                                             "bucketName": "outs"}}, env)
    assert job_bucket is not None and job_bucket.name == "outs"


async def test_a_half_configured_or_failing_bucket_is_a_clear_error(loopback: Any) -> None:
    with pytest.raises(BucketError, match="BUCKET_SECRET_ACCESS_KEY is not set"):
        Bucket.of_job({}, {"BUCKET_ENDPOINT_URL": "http://x", "BUCKET_ACCESS_KEY_ID": "a"})
    with pytest.raises(BucketError, match="s3Config lacks accessSecret"):
        Bucket.of_job({"s3Config": {"endpointUrl": "http://x", "accessId": "a"}}, {})
    refusing = type("Refusing", (_Bucket,), {"do_PUT": _Bucket.do_GET})  # unsigned: 403
    secret = "s3cr3t-" + "z" * 30
    bucket = Bucket(loopback(refusing), "AKIDEXAMPLE", secret)
    with pytest.raises(BucketError, match=r"upload of rp_00001_\.png to the bucket") as caught:
        await success_output(RESULT, "job-9", bucket)
    assert secret not in str(caught.value)


# --- progress (no engine) ---------------------------------------------------------------------------------------


class _JobDone(BaseHTTPRequestHandler):
    """RunPod's job-done URL: progress_update posts {"status": "IN_PROGRESS", "output": ...} there."""

    posts: ClassVar[list[Any]] = []

    def do_POST(self) -> None:
        time.sleep(0.3)  # a slow platform: the handler must still not return before the post is done
        self.posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


async def test_progress_is_throttled_and_never_comes_after_the_result(loopback: Any,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    handler = type("JobDone", (_JobDone,), {"posts": []})
    monkeypatch.setattr(rp_http, "JOB_DONE_URL", f"{loopback(handler)}/job-done/$ID?gpu=x")
    reporter = ProgressReporter({"id": "job-7"}, every_s=0.2, enabled=True)
    for step in range(1, 13):  # 12 steps over ~0.6 s: the first 0.2 s send nothing, then one per 0.2 s
        reporter.on_event(Progress(type="progress", prompt_id="p", node="3", value=step, max=12))
        await asyncio.sleep(0.05)
    await reporter.settle()
    posts = list(handler.posts)  # all of them are in when settle() returns
    assert 1 <= len(posts) <= 3, posts
    assert posts[0]["status"] == "IN_PROGRESS" and posts[0]["output"]["progress"]["node"] == "3"
    assert posts[0]["output"]["progress"]["max"] == 12 and posts[0]["output"]["progress"]["value"] >= 4
    reporter.on_event(Progress(type="progress", prompt_id="p", node="3", value=12, max=12))
    await asyncio.sleep(0.4)
    assert handler.posts == posts  # none after the result
    quiet = ProgressReporter({"id": "job-8"}, every_s=0.0)  # off the platform: nowhere to send
    quiet.on_event(Progress(type="progress", prompt_id="p", node="3", value=1, max=2))
    await quiet.settle()
    assert handler.posts == posts


def test_the_worker_result_keys_are_the_ones_success_output_reads() -> None:
    from runtimes.contract import RunOutcome, RunOutput

    result = outcome_to_result(RunOutcome(run_id="r", applied={}, exec_ms=1.0, outputs=[
        RunOutput(node_id="5", filename="a.png", kind="image", mime="image/png", data=b"x")]))
    assert set(result["outputs"][0]) >= {"node_id", "filename", "kind", "mime", "data"}


async def test_a_worker_whose_engine_is_gone_says_so_and_asks_to_be_replaced(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch
                                                                              ) -> None:
    (tmp_path / "app_spec.json").write_text(json.dumps(photo_spec().to_dict()))
    worker = EngineWorker(WorkerPaths(comfyui_dir=tmp_path, python=Path(sys.executable), base_dir=tmp_path,
                                      spec_file=tmp_path / "app_spec.json"))  # never started
    output = await make_handler(worker)({"id": "job-1", "input": {"inputs": {"color": 1}, "run_id": "r-1"}})
    assert output["refresh_worker"] is True and output["run_id"] == "r-1" and output["status"] == "failed"
    assert "engine is not running" in output["error"] and output["run_error"]["type"] == "engine_lost"
    refused = await make_handler(worker)({"id": "job-2", "input": {"inputs": {"color": "red"}}})
    assert "refresh_worker" not in refused and "color" in refused["error"]  # a bad job is the caller's fault
    never = make_handler(worker, engine_problem="The ComfyUI engine of this worker did not start: boom")
    assert (await never({"id": "job-3", "input": {"inputs": {}}}))["error"].endswith("did not start: boom")
    monkeypatch.setenv("BUCKET_ENDPOINT_URL", "https://b.s3.eu-west-1.amazonaws.com")  # the keys forgotten
    nowhere = await make_handler(worker)({"id": "job-4", "input": {"inputs": {}}})
    assert "nowhere to go: BUCKET_ACCESS_KEY_ID, BUCKET_SECRET_ACCESS_KEY are not set" in nowhere["error"]


def test_a_network_volume_s_models_become_the_engine_s(tmp_path: Path) -> None:
    volume = tmp_path / "runpod-volume" / "models"
    (volume / "checkpoints").mkdir(parents=True)
    base = tmp_path / "base"
    (base / "models").mkdir(parents=True)  # an empty models/ (the image has none)
    use_models_dir(base, str(volume))
    assert (base / "models").resolve() == volume.resolve() and (base / "models" / "checkpoints").is_dir()
    baked = tmp_path / "baked"
    (baked / "models" / "vae").mkdir(parents=True)
    use_models_dir(baked, str(volume))  # the image's own models stay
    use_models_dir(tmp_path / "other", str(tmp_path / "no-volume"))  # no volume attached: nothing changes
    assert not (baked / "models").is_symlink() and not (tmp_path / "other" / "models").exists()



def test_a_volume_app_s_models_are_fetched_into_the_volume_or_the_worker_says_why_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models_file = tmp_path / "models.json"
    models_file.write_text(json.dumps([{"folder": "checkpoints", "filename": "tiny.safetensors", "repo": "o/r",
                                        "file": "tiny.safetensors", "revision": None, "sha256": None}]))
    volume = tmp_path / "runpod-volume"
    missing_volume = prepare_models(tmp_path / "base", str(volume / "models"), str(models_file))
    assert missing_volume is not None and f"{volume} is not mounted" in missing_volume
    assert "network_volume_id" in missing_volume and not (tmp_path / "base" / "models").exists()

    volume.mkdir()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # a Hub that is not there
    unreachable = prepare_models(tmp_path / "base", str(volume / "models"), str(models_file))
    assert unreachable is not None and "hf://o/r/tiny.safetensors" in unreachable
    assert not (volume / "models" / "checkpoints" / "tiny.safetensors").exists()  # nothing half-written

    (volume / "models" / "checkpoints").mkdir(parents=True)
    (volume / "models" / "checkpoints" / "tiny.safetensors").write_bytes(b"weights")  # a file present is kept
    assert prepare_models(tmp_path / "base", str(volume / "models"), str(models_file)) is None
    assert (tmp_path / "base" / "models" / "checkpoints" / "tiny.safetensors").read_bytes() == b"weights"

# --- the handler under the SDK's local API server, on the real engine -------------------------------------------

SCRIPT = """import sys
sys.path.insert(0, {repo!r})
from runtimes.runpod.container.handler import serve

CONTAINER_PATHS = {{"comfyui_dir": "/comfyui", "python": "/usr/bin/python3", "base_dir": "/comfy-data",
                   "spec_file": "/app_spec.json", "models_dir": ""}}
serve(CONTAINER_PATHS)
"""


@pytest.fixture(scope="module")
def worker_api(tmp_path_factory: pytest.TempPathFactory, engine_install: EngineInstall) -> Iterator[str]:
    """The generated handler.py's two lines, run as a subprocess under `--rp_serve_api` (the container paths
    overridden by env, as WorkerPaths.from_env allows); its URL once the engine is up and the server answers."""
    home = tmp_path_factory.mktemp("runpod-worker")
    (home / "app_spec.json").write_text(json.dumps(photo_spec().to_dict()))
    script = home / "handler.py"
    script.write_text(SCRIPT.format(repo=str(REPO)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "BUCKET_", "COMFY_PUBLISHER_"))}
    env.update(COMFY_PUBLISHER_COMFYUI_DIR=str(engine_install.comfyui_dir),
               COMFY_PUBLISHER_PYTHON=str(engine_install.python), COMFY_PUBLISHER_BASE_DIR=str(home / "base"),
               COMFY_PUBLISHER_SPEC_FILE=str(home / "app_spec.json"), UVICORN_LOG_LEVEL="warning")
    port = free_port()
    log = (home / "worker.log").open("wb")
    process = subprocess.Popen([sys.executable, str(script), "--rp_serve_api", "--rp_api_host", "127.0.0.1",
                                "--rp_api_port", str(port)], cwd=home, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the worker exited ({process.returncode}):\n"
                                     f"{(home / 'worker.log').read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}/openapi.json", trust_env=False, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (home / "worker.log").read_text()[-4000:]
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def post(url: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = httpx.post(f"{url}{path}", json=body, trust_env=False, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def pixels(output: dict[str, Any]) -> tuple[Any, Any]:
    (image,) = output["images"]
    assert image["type"] == "base64" and image["node_id"] == "5" and image["mime"] == "image/png"
    assert image["index"] == 0 and output["files"] == []
    picture = image_of(base64.b64decode(image["data"]))
    return picture.getpixel((0, 0)), picture.getpixel((15, 15))


def near(got: tuple[Any, ...], want: tuple[Any, ...]) -> bool:
    """Pixels equal to within one step: the photo goes through the engine's floats (x / 255, inverted, x 255)."""
    return all(abs(a - b) <= 1 for g, w in zip(got, want, strict=True) for a, b in zip(g, w, strict=True))


def test_typed_shape_runs_on_the_engine(worker_api: str) -> None:
    done = post(worker_api, "/runsync", {"input": {"inputs": {"color": 0x102030, "photo": data_url(photo())}}})
    assert done["status"] == "COMPLETED", done
    assert near(pixels(done["output"]), (inverted(0xC86432), inverted(0x102030)))
    assert done["output"]["status"] == "succeeded" and done["output"]["applied"]["color"] == 0x102030


def test_worker_comfyui_shape_runs_on_the_engine(worker_api: str) -> None:
    job = {"workflow": graph(**{"1": {"color": 0x00FF00}, "2": {"image": "input_image_1.png"}}),
           "images": [{"name": "input_image_1.png", "image": data_url(photo((10, 20, 30)))}]}
    queued = post(worker_api, "/run", {"input": job})
    done = post(worker_api, f"/status/{queued['id']}")  # the local server runs the job inside this call
    assert done["status"] == "COMPLETED", done
    assert near(pixels(done["output"]), (inverted(0x0A141E), inverted(0x00FF00)))


def test_bad_input_gets_the_handlers_error_and_the_worker_goes_on(worker_api: str) -> None:
    cases = [
        ({"workflow": graph(**{"3": {"x": 4}})}, "node 3 (ImageCompositeMasked) input 'x' is not an input"),
        ({"workflow": {**graph(), "9": {"class_type": "ImageInvert", "inputs": {"image": ["4", 0]}}}},
         "node 9 (ImageInvert) is not in the app's workflow"),
        ({"workflow": graph(**{"2": {"image": "a.png"}}), "images": [{"name": "a.png", "image": b64(b"%PDF-1.4")}]},
         '"a.png" is not an image this app accepts'),
        ({"inputs": {"photo": b64(huge_image())}}, "the image has too many pixels"),
        ({"images": []}, "neither 'inputs' nor 'workflow'"),
    ]
    for job_input, said in cases:
        failed = post(worker_api, "/runsync", {"input": job_input})
        assert failed["status"] == "FAILED" and said in failed["error"], (job_input, failed)
    done = post(worker_api, "/runsync", {"input": {"inputs": {"color": 0xFFFFFF, "photo": b64(photo())}}})
    assert done["status"] == "COMPLETED" and pixels(done["output"])[1] == (0, 0, 0)
