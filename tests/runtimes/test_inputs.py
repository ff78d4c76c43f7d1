"""The checks every run's inputs pass before an engine sees them, on the app's side and in a deployment (the Modal
wire decodes uploads with the same checked decoder)."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from runtimes.files import safe_filename
from runtimes.inputs import InputProblems, decode_image
from runtimes.modal.wire import request_from_payload
from tests.runtimes.modal_support import demo_spec


def _image(kind: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buffer, format=kind)
    return buffer.getvalue()


def test_an_uploaded_image_is_named_by_its_real_format_whatever_it_came_as() -> None:
    jpeg = _image("JPEG")
    name, data = decode_image("photo", "data:image/png;base64," + base64.b64encode(jpeg).decode(), 2**20)
    assert (name, data) == ("upload.jpg", jpeg)


@pytest.mark.parametrize(("value", "message"), [
    (base64.b64encode(b"#!/bin/sh\nrm -rf /\n").decode(), "is not an image"),
    ("not base64 at all!", "not base64"),
    (base64.b64encode(_image("PNG") + b"\0" * 2048).decode(), "larger than"),
])
def test_what_is_not_an_acceptable_image_is_refused_naming_the_input(value: str, message: str) -> None:
    with pytest.raises(InputProblems) as refused:
        decode_image("photo", value, max_bytes=1024)
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
