"""Uploads are known by their content: the container a video or sound is, from its first bytes, whatever its name;
and each kind has its own cap, derived from --max-upload-mb."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from publisher import AppInput, AppOutput, AppSpec
from runtimes.inputs import ImageLimits, InputProblems, check_upload, decode_upload
from runtimes.media import describe_content, largest_upload_bytes, max_bytes_for, sniff_audio, sniff_video
from runtimes.media_types import mime_of
from runtimes.serverless.wire import request_from_payload
from tests.support.media import gif_bytes, wav_bytes

MP4 = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + b"\0" * 64
MOV = b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  " + b"\0" * 64
M4A = b"\x00\x00\x00\x1cftypM4A \x00\x00\x00\x00M4A isom" + b"\0" * 64
WEBM = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x84webm" + b"\0" * 64
MKV = b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x88matroska" + b"\0" * 64
AVI = b"RIFF\x00\x10\x00\x00AVI LIST" + b"\0" * 64
FLAC = b"fLaC\x00\x00\x00\x22" + b"\0" * 64
OGG = b"OggS\x00\x02" + b"\0" * 22 + b"\x01\x1e\x01vorbis" + b"\0" * 64
OPUS = b"OggS\x00\x02" + b"\0" * 22 + b"OpusHead\x01\x02" + b"\0" * 64
MP3_ID3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\0" * 64
MP3_FRAME = b"\xff\xfb\x90\x64" + b"\0" * 64
AAC = b"\xff\xf1\x50\x80\x02\x1f\xfc" + b"\0" * 64


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(("data", "video", "audio"), [
    (MP4, "mp4", "m4a"), (MOV, "mov", "m4a"), (WEBM, "webm", None), (MKV, "mkv", None), (AVI, "avi", None),
    (gif_bytes(), "gif", None), (M4A, None, "m4a"), (wav_bytes(), None, "wav"), (FLAC, None, "flac"),
    (OGG, None, "ogg"), (OPUS, None, "opus"), (MP3_ID3, None, "mp3"), (MP3_FRAME, None, "mp3"), (AAC, None, "aac"),
    (_png(), None, None), (b"<svg/>", None, None), (b"", None, None),
])
def test_a_container_is_known_by_its_first_bytes(data: bytes, video: str | None, audio: str | None) -> None:
    assert (sniff_video(data), sniff_audio(data)) == (video, audio)


def test_an_upload_is_stored_under_the_extension_of_what_it_is_not_what_it_was_called() -> None:
    assert check_upload("clip", "video", "holiday.txt", WEBM) == ("holiday.webm", WEBM)
    assert check_upload("voice", "audio", "voice.mp4", FLAC) == ("voice.flac", FLAC)
    assert check_upload("doc", "file", "notes.bin", b"anything") == ("notes.bin", b"anything")
    assert check_upload("doc", "file", "../../etc/passwd", b"x") == ("passwd", b"x")  # never a path
    assert check_upload("voice", "audio", "C:\\Users\\me\\my voice.txt", FLAC)[0] == "my_voice.flac"
    assert decode_upload("clip", "video", "data:video/mp4;base64," + base64.b64encode(MOV).decode()) == \
        ("upload.mov", MOV)


@pytest.mark.parametrize(("kind", "data", "it_is"), [
    ("video", wav_bytes(), "a wav sound"), ("video", _png(), "an image (png)"), ("audio", WEBM, "a webm video"),
    ("audio", b"#!/bin/sh\n", "text"), ("image", FLAC, "a flac sound"), ("mask", MP4, "a mp4 video"),
])
def test_a_file_of_another_kind_is_refused_saying_what_it_is(kind: str, data: bytes, it_is: str) -> None:
    with pytest.raises(InputProblems) as refused:
        check_upload("thing", kind, "thing.bin", data)
    (problem,) = refused.value.problems
    assert problem["input"] == "thing" and '"thing.bin"' in problem["message"]
    assert f"its content is {it_is}" in problem["message"] and problem["allowed"]


def test_each_kind_has_its_own_cap_derived_from_the_upload_setting() -> None:
    limits = ImageLimits(max_bytes=1000)
    assert [limits.bytes_for(k) for k in ("image", "mask", "file", "audio", "video")] == [1000, 1000, 1000, 2000, 4000]
    assert largest_upload_bytes(1000) == max_bytes_for("video", 1000) == 4000
    check_upload("clip", "video", "c.webm", WEBM + b"\0" * 3000, limits)  # a video over an image's cap is fine
    for kind, data in (("audio", FLAC + b"\0" * 2000), ("file", b"x" * 1001), ("video", WEBM + b"\0" * 4000)):
        with pytest.raises(InputProblems, match="larger than"):
            check_upload("x", kind, "x", data, limits)
    with pytest.raises(InputProblems, match="larger than"):  # before decoding: the base64 text is already too long
        decode_upload("x", "audio", base64.b64encode(FLAC + b"\0" * 3000).decode(), limits)


def test_what_content_it_is_reads_the_bytes() -> None:
    assert describe_content(b"\x00\x01\xfe\xff" * 10) == "of a kind not recognised"
    assert describe_content(b"") == "empty"


@pytest.mark.parametrize(("name", "mime"), [
    ("a.glb", "model/gltf-binary"), ("a.GLTF", "model/gltf+json"), ("a.obj", "model/obj"), ("a.ply", "model/ply"),
    ("a.stl", "model/stl"), ("a.txt", "text/plain"), ("a.opus", "audio/ogg"), ("a.flac", "audio/flac"),
    ("a.mp4", "video/mp4"), ("a.webp", "image/webp"), ("a.safetensors", "application/octet-stream"),
    ("noextension", "application/octet-stream"),
])
def test_output_content_types_are_mapped_explicitly(name: str, mime: str) -> None:
    assert mime_of(name) == mime


def test_a_deployment_decodes_video_and_sound_by_their_content_too() -> None:
    spec = AppSpec(workflow={"1": {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}},
                             "2": {"class_type": "LoadAudio", "inputs": {"audio": "voice.wav"}}},
                   outputs=(AppOutput("1", "video", "Video"),),
                   inputs=(AppInput(node="1", input="file", type="video", name="clip"),
                           AppInput(node="2", input="audio", type="audio", name="voice")))
    request = request_from_payload(spec, "d" * 32, {"clip": base64.b64encode(WEBM).decode(),
                                                    "voice": base64.b64encode(FLAC).decode()})
    assert request.uploads == {"clip": ("upload.webm", WEBM), "voice": ("upload.flac", FLAC)}
    with pytest.raises(InputProblems, match="its content is a flac sound"):
        request_from_payload(spec, "e" * 32, {"clip": base64.b64encode(FLAC).decode()})
    assert request_from_payload(spec, "f" * 32, {"clip": "clip.mp4"}).values == {"clip": "clip.mp4"}  # its own file
