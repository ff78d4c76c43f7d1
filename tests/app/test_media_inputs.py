"""Inputs of every kind through the typed API, on the real engine: a video (LoadVideo), a sound (LoadAudio) and a mask
(LoadImageMask) sent as JSON base64 and as multipart file parts, each checked by its content and run; what is
refused (the wrong kind, too large for its kind, a file for an input that takes a value) says so; the outputs come
back with their content types, and the app's OpenAPI documents each kind."""

from __future__ import annotations

import base64
import io
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from runtimes.engine.install import EngineInstall
from tests.support.media import FRAME_COLOURS, gif_bytes, mp4_bytes, wav_bytes
from tests.support.server import AppServer

UPLOAD_MB = 1  # an image or a file may be 1 MiB here, a sound 2 MiB, a video 4 MiB (runtimes.media.BYTES_FACTOR)
MIB = 2**20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine_url: str) -> Iterator[AppServer]:
    app = AppServer(tmp_path_factory.mktemp("media"), comfyui_url=engine_url,
                    extra=("--max-upload-mb", str(UPLOAD_MB))).start()
    yield app
    app.stop()


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory, engine_install: EngineInstall) -> bytes:
    return mp4_bytes(engine_install.python, tmp_path_factory.mktemp("mp4"))


def _publish(http: httpx.Client, admin: dict[str, str], workflow: dict[str, Any],
             inputs: list[dict[str, Any]]) -> str:
    response = http.post("/api/apps", headers=admin, json={"name": "Media", "slug": f"m-{uuid.uuid4().hex[:8]}",
                                                           "public": True, "workflow": workflow, "inputs": inputs})
    assert response.status_code == 201, response.text
    return str(response.json()["slug"])


@pytest.fixture(scope="module")
def video_app(http: httpx.Client, admin: dict[str, str]) -> str:
    workflow = {"1": {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}},
                "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
                "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "frames"}},
                "4": {"class_type": "SaveVideo", "inputs": {"video": ["1", 0], "filename_prefix": "video",
                                                            "format": "mp4", "codec": "h264"}}}
    return _publish(http, admin, workflow, [{"node": "1", "input": "file", "name": "clip", "required": True}])


@pytest.fixture(scope="module")
def audio_app(http: httpx.Client, admin: dict[str, str]) -> str:
    workflow = {"1": {"class_type": "LoadAudio", "inputs": {"audio": "voice.wav"}},
                "2": {"class_type": "SaveAudio", "inputs": {"audio": ["1", 0], "filename_prefix": "sound"}}}
    return _publish(http, admin, workflow, [{"node": "1", "input": "audio", "name": "voice", "required": True}])


@pytest.fixture(scope="module")
def mask_app(http: httpx.Client, admin: dict[str, str]) -> str:
    workflow = {"1": {"class_type": "LoadImageMask", "inputs": {"image": "mask.png", "channel": "alpha"}},
                "2": {"class_type": "MaskToImage", "inputs": {"mask": ["1", 0]}},
                "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "mask"}}}
    return _publish(http, admin, workflow, [{"node": "1", "input": "image", "name": "mask", "required": True},
                                            {"node": "1", "input": "channel", "name": "channel"}])


def _run(http: httpx.Client, slug: str, **body: Any) -> dict[str, Any]:
    response = http.post(f"/api/apps/{slug}/run", **body)
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["status"] == "succeeded", run["error"]
    return dict(run)


def _problems(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    return list(response.json()["detail"]["problems"])


def _problem(response: httpx.Response) -> dict[str, Any]:
    (problem,) = _problems(response)
    return problem


def _pixel(data: bytes) -> tuple[int, ...]:
    with Image.open(io.BytesIO(data)) as image:
        return tuple(image.convert("RGB").getpixel((image.width // 2, image.height // 2)))


def _close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def test_a_video_sent_as_a_file_part_runs_on_loadvideo(http: httpx.Client, video_app: str, mp4: bytes) -> None:
    run = _run(http, video_app, files={"clip": ("holiday.bin", mp4, "application/octet-stream")})
    frames = [o for o in run["outputs"] if o["node"] == "3"]
    assert len(frames) == 6  # every frame of the clip reached the engine, in order
    colours = [_pixel(http.get(o["url"]).content) for o in frames[::2]]
    assert all(_close(got, want) for got, want in zip(colours, FRAME_COLOURS, strict=True)), colours
    (video,) = [o for o in run["outputs"] if o["node"] == "4"]
    served = http.get(video["url"])
    assert video["mime"] == served.headers["content-type"] == "video/mp4" and video["kind"] == "video"
    assert served.content[4:8] == b"ftyp"


def test_a_video_sent_as_base64_in_json_runs_too(http: httpx.Client, video_app: str) -> None:
    gif = gif_bytes()  # an animated GIF: a video the engine's LoadVideo reads
    run = _run(http, video_app, json={"inputs": {"clip": "data:video/gif;base64," + base64.b64encode(gif).decode()}})
    assert len([o for o in run["outputs"] if o["node"] == "3"]) == len(FRAME_COLOURS)


def test_a_sound_runs_on_loadaudio_as_json_and_as_multipart(http: httpx.Client, audio_app: str) -> None:
    wav = wav_bytes()
    for body in ({"json": {"inputs": {"voice": base64.b64encode(wav).decode()}}},
                 {"files": {"voice": ("voice.mp4", wav, "video/mp4")}}):  # the name and declared type lie
        run = _run(http, audio_app, **body)
        (sound,) = run["outputs"]
        served = http.get(sound["url"])
        assert sound["kind"] == "audio" and served.headers["content-type"] == "audio/flac"
        assert served.content[:4] == b"fLaC"


# Every audio and video save node of the engine, fed by a sound and a clip.
EVERY_MEDIA_SAVE = {
    "1": {"class_type": "LoadAudio", "inputs": {"audio": "voice.wav"}},
    "2": {"class_type": "SaveAudio", "inputs": {"audio": ["1", 0], "filename_prefix": "flac"}},
    "3": {"class_type": "SaveAudioMP3", "inputs": {"audio": ["1", 0], "filename_prefix": "mp3", "quality": "128k"}},
    "4": {"class_type": "SaveAudioOpus", "inputs": {"audio": ["1", 0], "filename_prefix": "opus", "quality": "64k"}},
    "5": {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}},
    "6": {"class_type": "SaveVideo", "inputs": {"video": ["5", 0], "filename_prefix": "mp4", "format": "mp4",
                                                "codec": "h264"}},
    "7": {"class_type": "GetVideoComponents", "inputs": {"video": ["5", 0]}},
    "8": {"class_type": "SaveWEBM", "inputs": {"images": ["7", 0], "filename_prefix": "webm", "codec": "vp9",
                                               "fps": 10.0, "crf": 40.0}},
}


def test_a_private_apps_sound_and_video_outputs_carry_no_workflow(http: httpx.Client, admin: dict[str, str],
                                                                  mp4: bytes) -> None:
    """The engine writes the prompt into every audio and video file it saves (its JSON names the nodes): a public
    app's outputs keep it, a private app's are served without it, in every format."""
    files = {"voice": ("voice.wav", wav_bytes(), "audio/wav"), "clip": ("clip.mp4", mp4, "video/mp4")}
    served: dict[bool, dict[str, bytes]] = {}
    for public in (True, False):
        response = http.post("/api/apps", headers=admin, json={
            "name": "Media", "slug": f"m-{uuid.uuid4().hex[:8]}", "public": public, "workflow": EVERY_MEDIA_SAVE,
            "inputs": [{"node": "1", "input": "audio", "name": "voice", "required": True},
                       {"node": "5", "input": "file", "name": "clip", "required": True}]})
        assert response.status_code == 201, response.text
        run = _run(http, response.json()["slug"], headers=admin, files=files)
        served[public] = {o["mime"]: http.get(o["url"], headers=admin).content for o in run["outputs"]}
    mimes = {"audio/flac", "audio/mpeg", "audio/ogg", "video/mp4", "video/webm"}
    assert set(served[True]) == set(served[False]) == mimes
    for mime in mimes:
        assert b"LoadAudio" in served[True][mime], mime  # the engine did embed the prompt
        assert b"LoadAudio" not in served[False][mime] and b"SaveWEBM" not in served[False][mime], mime


def test_a_mask_reaches_loadimagemask_by_its_alpha_or_a_colour_channel(http: httpx.Client, mask_app: str) -> None:
    mask = Image.new("RGBA", (16, 16), (0, 0, 0, 255))
    mask.paste((255, 255, 255, 0), (0, 0, 8, 16))  # the left half painted: white and transparent
    out = io.BytesIO()
    mask.save(out, format="PNG")
    for body in ({"files": {"mask": ("m.png", out.getvalue(), "image/png")}},
                 {"json": {"inputs": {"mask": base64.b64encode(out.getvalue()).decode(), "channel": "red"}}}):
        (image,) = _run(http, mask_app, **body)["outputs"]
        with Image.open(io.BytesIO(http.get(image["url"]).content)) as result:
            grey = result.convert("L")
            assert grey.getpixel((2, 8)) == 255 and grey.getpixel((13, 8)) == 0


@pytest.mark.parametrize(("data", "it_is"), [
    (wav_bytes(), "a wav sound"),  # a sound for a video input
    (b"<html>not a video</html>", "text"),
])
def test_a_file_of_the_wrong_kind_is_refused_naming_the_input_the_file_and_what_is_allowed(
        http: httpx.Client, video_app: str, data: bytes, it_is: str) -> None:
    problem = _problem(http.post(f"/api/apps/{video_app}/runs", files={"clip": ("clip.mp4", data, "video/mp4")}))
    assert problem["input"] == "clip" and '"clip.mp4" is not a video file' in problem["message"]
    assert f"its content is {it_is}" in problem["message"]
    assert "mp4" in problem["allowed"] and "webm" in problem["allowed"]


def test_each_kind_has_its_own_size_cap(http: httpx.Client, video_app: str, audio_app: str, mask_app: str,
                                        mp4: bytes) -> None:
    padded = mp4 + b"\0" * (2 * MIB)  # over an image's cap, under a video's
    response = http.post(f"/api/apps/{video_app}/runs", files={"clip": ("big.mp4", padded, "video/mp4")})
    assert response.status_code == 202, response.text
    too_long = wav_bytes() + b"\0" * (2 * MIB + 10)
    problem = _problem(http.post(f"/api/apps/{audio_app}/runs", files={"voice": ("long.wav", too_long)}))
    assert problem["input"] == "voice" and "larger than 2 MiB" in problem["message"], problem
    problem = _problem(http.post(f"/api/apps/{audio_app}/runs",
                                 json={"inputs": {"voice": base64.b64encode(too_long).decode()}}))
    assert "larger than 2 MiB" in problem["message"], problem
    big_png = io.BytesIO()
    Image.frombytes("RGB", (800, 800), random.Random(0).randbytes(800 * 800 * 3)).save(big_png, format="PNG")
    assert big_png.tell() > MIB
    problem = _problem(http.post(f"/api/apps/{mask_app}/runs", files={"mask": ("m.png", big_png.getvalue())}))
    assert problem["input"] == "mask" and "larger than 1 MiB" in problem["message"], problem


def test_a_file_for_an_input_that_takes_a_value_is_refused(http: httpx.Client, mask_app: str) -> None:
    problems = {p["input"]: p for p in _problems(http.post(f"/api/apps/{mask_app}/runs", files={
        "channel": ("c.png", b"\x89PNG"), "nope": ("c.png", b"\x89PNG")}))}
    assert "takes a value" in problems["channel"]["message"] and problems["channel"]["node_input"] == "channel"
    assert "does not have" in problems["nope"]["message"] and problems["nope"]["allowed"] == ["mask"]


def test_a_file_name_that_is_no_upload_is_refused(http: httpx.Client, audio_app: str) -> None:
    problem = _problem(http.post(f"/api/apps/{audio_app}/runs", json={"inputs": {"voice": "../other/voice.wav"}}))
    assert problem["input"] == "voice" and "not a file uploaded with this run" in problem["message"]


def test_the_openapi_documents_each_kind_in_json_and_multipart(http: httpx.Client, video_app: str,
                                                                audio_app: str, mask_app: str) -> None:
    for slug, name, media in ((video_app, "clip", "video/*"), (audio_app, "voice", "audio/*"),
                              (mask_app, "mask", "image/*")):
        schema = http.get(f"/api/apps/{slug}/openapi.json").json()
        content = schema["paths"][f"/api/apps/{slug}/run"]["post"]["requestBody"]["content"]
        multipart = content["multipart/form-data"]
        assert multipart["schema"]["properties"][name]["format"] == "binary"
        assert multipart["encoding"][name]["contentType"] == media
        inputs = next(s for key, s in schema["components"]["schemas"].items() if key.endswith("Inputs")
                      and name in s["properties"])
        field = inputs["properties"][name]
        assert field["contentEncoding"] == "base64" and field["contentMediaType"] == media
        assert "base64" in field["description"]


@pytest.mark.parametrize(("name", "mime"), [
    ("mesh.glb", "model/gltf-binary"), ("scene.gltf", "model/gltf+json"), ("mesh.obj", "model/obj"),
    ("cloud.ply", "model/ply"), ("part.stl", "model/stl"), ("notes.txt", "text/plain"),
    ("clip.webm", "video/webm"), ("clip.mkv", "video/x-matroska"), ("voice.opus", "audio/ogg"),
    ("voice.wav", "audio/wav"), ("photo.webp", "image/webp"),
])
def test_outputs_are_served_with_the_content_type_of_what_they_are(server: AppServer, http: httpx.Client,
                                                                   name: str, mime: str) -> None:
    folder = Path(server.data_dir) / "outputs" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    (folder / name).write_bytes(b"0123")
    response = http.get(f"/files/outputs/{folder.name}/{name}")
    assert response.status_code == 200 and response.headers["content-type"].split(";")[0] == mime
