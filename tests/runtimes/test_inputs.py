"""The checks every run's inputs pass before an engine sees them, on the app's side and in a deployment (the Modal
wire decodes uploads with the same checked decoder)."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from publisher import AppInput, AppOutput, AppSpec
from runtimes.files import safe_filename
from runtimes.inputs import ImageLimits, InputProblems, check_image, check_values, decode_image, split_json_inputs
from runtimes.serverless.wire import request_from_payload
from tests.runtimes.modal_support import demo_spec


def _image(kind: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buffer, format=kind)
    return buffer.getvalue()


def test_an_uploaded_image_is_named_by_its_real_format_whatever_it_came_as() -> None:
    jpeg = _image("JPEG")
    name, data = decode_image("photo", "data:image/png;base64," + base64.b64encode(jpeg).decode())
    assert (name, data) == ("upload.jpg", jpeg)


@pytest.mark.parametrize(("value", "message"), [
    (base64.b64encode(b"#!/bin/sh\nrm -rf /\n").decode(), "is not an image"),
    ("not base64 at all!", "not base64"),
    (base64.b64encode(_image("PNG") + b"\0" * 2048).decode(), "larger than"),
])
def test_what_is_not_an_acceptable_image_is_refused_naming_the_input(value: str, message: str) -> None:
    with pytest.raises(InputProblems) as refused:
        decode_image("photo", value, ImageLimits(max_bytes=1024))
    (problem,) = refused.value.problems
    assert problem["input"] == "photo" and message in problem["message"]


def test_a_deployment_decodes_uploads_with_the_same_checked_decoder() -> None:
    spec = demo_spec()
    image_input = type(spec.inputs[0])(node="1", input="color", type="image", name="photo")
    spec = type(spec)(workflow=spec.workflow, inputs=(*spec.inputs, image_input), outputs=spec.outputs)
    webp = _image("WEBP")
    request = request_from_payload(spec, "a" * 32, {"color": 5, "photo": base64.b64encode(webp).decode()})
    assert request.uploads == {"photo": ("upload.webp", webp)} and request.values == {"color": 5}
    with pytest.raises(InputProblems, match="photo"):
        request_from_payload(spec, "b" * 32, {"photo": base64.b64encode(b"<svg/>").decode()})


@pytest.mark.parametrize(("name", "safe"), [
    ("photo.png", "photo.png"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\me\\cat picture.jpg", "cat_picture.jpg"),
    ("..hidden", "hidden"),
    ("/", "file"),
])
def test_file_names_from_outside_keep_their_last_segment_and_safe_characters(name: str, safe: str) -> None:
    assert safe_filename(name) == safe


def _file_inputs_spec() -> AppSpec:
    """One input of each file type, on the engine's loaders (a video with an app default, the others without)."""
    workflow = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}},
        "3": {"class_type": "LoadAudio", "inputs": {"audio": "voice.flac"}},
        "4": {"class_type": "LoadImageMask", "inputs": {"image": "mask.png", "channel": "alpha"}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }
    return AppSpec(workflow=workflow, outputs=(AppOutput("5", "image", "Image"),), inputs=(
        AppInput(node="1", input="image", type="image", name="photo"),
        AppInput(node="2", input="file", type="video", name="clip", default="intro.mp4"),
        AppInput(node="3", input="audio", type="audio", name="voice"),
        AppInput(node="4", input="image", type="file", name="mask")))


@pytest.mark.parametrize(("name", "value"), [
    ("photo", "runs/0123456789abcdef/image-secret.png"),  # another run's upload
    ("clip", "runs/0123456789abcdef/clip.mp4"),
    ("voice", "voice2.flac"),  # whatever else sits in the engine's input folder
    ("mask", "runs/other/mask.png"),
    ("photo", ""),
])
def test_a_file_input_names_no_file_but_its_own_upload_or_the_apps_own(name: str, value: str) -> None:
    spec = _file_inputs_spec()
    with pytest.raises(InputProblems) as refused:
        check_values(spec, {name: value}, {})
    (problem,) = refused.value.problems
    assert problem["input"] == name and "not a file uploaded with this run" in problem["message"]
    assert problem["node"] == spec.input(name).node


def test_a_file_input_takes_its_upload_the_apps_default_or_the_workflows_file() -> None:
    spec = _file_inputs_spec()
    values = {"clip": "intro.mp4", "voice": "voice.flac", "mask": "mask.png"}  # default, then the literals
    assert check_values(spec, values, {"photo": "mine.png"}) == values


def test_a_long_foreign_file_name_is_shown_by_a_short_prefix_only() -> None:
    with pytest.raises(InputProblems) as refused:
        check_values(_file_inputs_spec(), {"voice": "runs/" + "x" * 10_000}, {})
    assert len(refused.value.problems[0]["message"]) < 300


def test_a_deployments_endpoint_refuses_another_runs_file_too() -> None:
    # The endpoint checks with split_json_inputs + check_values, as the app does: a JSON string for a video input
    # is a value, and a value naming a file is refused.
    spec = _file_inputs_spec()
    values, uploads, problems = split_json_inputs(spec, {"clip": "runs/abc/clip.mp4"})
    with pytest.raises(InputProblems, match="clip"):
        check_values(spec, values, {n: f for n, (f, _) in uploads.items()}, problems)
    with pytest.raises(InputProblems, match="clip"):  # and its worker, called directly
        request_from_payload(spec, "c" * 32, {"clip": "runs/abc/clip.mp4"})


def _png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_image_with_more_pixels_than_the_cap_is_refused_as_too_many_pixels() -> None:
    small_file = _png((8192, 8192), "1")  # a few KB on the wire, gigabytes on the engine
    assert len(small_file) < 2**20
    with pytest.raises(InputProblems) as refused:
        check_image("photo", "bomb.png", small_file)
    assert "too many pixels" in refused.value.problems[0]["message"]
    assert check_image("photo", "ok.png", _png((64, 64)), ImageLimits(max_pixels=64 * 64))[0] == "ok.png"
    with pytest.raises(InputProblems, match="too many pixels"):
        check_image("photo", "ok.png", _png((65, 64)), ImageLimits(max_pixels=64 * 64))


def test_an_image_past_pillows_own_bomb_limit_is_too_many_pixels_not_not_an_image() -> None:
    huge = _png((Image.MAX_IMAGE_PIXELS // 10_000 * 2 + 1_000, 10_000), "1")
    with pytest.raises(InputProblems) as refused:
        check_image("photo", "huge.png", huge, ImageLimits(max_bytes=2**24))
    message = refused.value.problems[0]["message"]
    assert "too many pixels" in message and "not an image" not in message
