"""Stripping the workflow the engine embeds in output files: the metadata goes, the pixels (and sound, and video
frames) stay bit-identical."""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import pytest
from PIL import Image, PngImagePlugin

from runtimes.engine.install import EngineInstall
from runtimes.media_types import mime_of
from runtimes.outputs_metadata import strip_metadata
from tests.support.media import TAGGED_NAMES, media_report, tagged_media

PROMPT = json.dumps({"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "secret.safetensors"}}})


def _picture() -> Image.Image:
    image = Image.new("RGB", (17, 9))
    image.putdata([(x * 13 % 256, y * 29 % 256, (x * y) % 256) for y in range(9) for x in range(17)])
    return image


def _saved(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "prompt:" + PROMPT  # where ComfyUI's SaveAnimatedWEBP puts it
    return exif


def test_png_text_chunks_go_and_the_pixels_stay() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", PROMPT)  # as ComfyUI's SaveImage writes it
    info.add_text("workflow", json.dumps({"nodes": []}))
    info.add_itxt("comment", "secret négatif", zip=True)
    original = _saved(_picture(), "PNG", pnginfo=info, compress_level=4)
    assert Image.open(io.BytesIO(original)).text.keys() == {"prompt", "workflow", "comment"}

    stripped = strip_metadata(original, "image/png")

    image = Image.open(io.BytesIO(stripped))
    image.load()  # every chunk's CRC is checked: the file is intact
    assert image.text == {}
    assert b"secret" not in stripped
    assert image.tobytes() == Image.open(io.BytesIO(original)).tobytes()
    assert strip_metadata(stripped, "image/png") == stripped


def test_webp_exif_goes_and_the_pixels_stay() -> None:
    original = _saved(_picture(), "WEBP", lossless=True, exif=_exif())
    assert "exif" in Image.open(io.BytesIO(original)).info

    stripped = strip_metadata(original, "image/webp")

    image = Image.open(io.BytesIO(stripped))
    assert "exif" not in image.info and b"secret" not in stripped
    assert image.tobytes() == Image.open(io.BytesIO(original)).tobytes()


def test_jpeg_exif_goes_and_the_image_data_stays() -> None:
    original = _saved(_picture(), "JPEG", quality=90, exif=_exif())

    stripped = strip_metadata(original, "image/jpeg")

    image = Image.open(io.BytesIO(stripped))
    assert "exif" not in image.info and b"secret" not in stripped
    assert image.tobytes() == Image.open(io.BytesIO(original)).tobytes()


def test_other_files_and_damaged_images_are_left_as_they_are() -> None:
    assert strip_metadata(b"RIFF....WAVEfmt ", "audio/wav") == b"RIFF....WAVEfmt "
    assert strip_metadata(b"not a png", "image/png") == b"not a png"


# --- audio and video, tagged as ComfyUI's save nodes tag them, read back by PyAV ----------------------------------

# A large prompt, as a big workflow has: its Opus comment packet spans several Ogg pages.
TAGS = {"prompt": json.dumps({"1": {"class_type": "CLIPTextEncode", "inputs": {"text": "secret " * 12000}}}),
        "workflow": json.dumps({"nodes": [{"type": "secret-node"}]})}


@pytest.fixture(scope="module")
def media(engine_install: EngineInstall, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Name -> the tagged original, the stripped copy, and what PyAV reads in each."""
    originals_dir, stripped_dir = tmp_path_factory.mktemp("tagged"), tmp_path_factory.mktemp("stripped")
    originals = tagged_media(engine_install.python, originals_dir, TAGS)
    for name, data in originals.items():
        (stripped_dir / name).write_bytes(strip_metadata(data, mime_of(name)))
    paths = [folder / name for folder in (originals_dir, stripped_dir) for name in TAGGED_NAMES]
    report = media_report(engine_install.python, paths)
    return {name: {"original": originals[name], "stripped": (stripped_dir / name).read_bytes(),
                   "original_read": report[str(originals_dir / name)],
                   "stripped_read": report[str(stripped_dir / name)]} for name in TAGGED_NAMES}


@pytest.mark.parametrize("name", TAGGED_NAMES)
def test_audio_and_video_tags_go_and_the_decoded_media_stays(media: dict[str, dict[str, Any]], name: str) -> None:
    file = media[name]
    assert {"prompt", "workflow"} <= {key.lower() for key in file["original_read"]["keys"]}  # tagged as ComfyUI does
    assert b"secret" in file["original"]

    assert not {"prompt", "workflow"} & {key.lower() for key in file["stripped_read"]["keys"]}
    assert b"secret" not in file["stripped"]
    assert file["stripped_read"]["decoded"] == file["original_read"]["decoded"]  # every frame decodes the same
    assert strip_metadata(file["stripped"], mime_of(name)) == file["stripped"]


@pytest.mark.parametrize("name", ["sound.flac", "sound.opus", "clip.mp4", "clip.webm"])
def test_containers_with_offsets_are_blanked_in_place(media: dict[str, dict[str, Any]], name: str) -> None:
    """Seek tables, chunk offsets and cues point at absolute positions: the tags become padding of the same size."""
    original, stripped = media[name]["original"], media[name]["stripped"]
    assert len(stripped) == len(original)
    changed = sum(a != b for a, b in zip(original, stripped, strict=True))
    assert 0 < changed <= sum(map(len, TAGS.values())) + 1024  # about the tags' own bytes, nothing of the media


def _ogg_crc_by_the_book(page: bytes) -> int:
    """RFC 3533's CRC, bit by bit: an oracle independent of the stripper's table-free version."""
    crc = 0
    for byte in page:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc


def test_every_rewritten_ogg_page_has_a_valid_crc(media: dict[str, dict[str, Any]]) -> None:
    original, stripped = media["sound.opus"]["original"], media["sound.opus"]["stripped"]
    pos, pages, rewritten = 0, 0, 0
    while pos < len(stripped):
        assert stripped[pos:pos + 4] == b"OggS"
        lacing = stripped[pos + 27:pos + 27 + stripped[pos + 26]]
        end = pos + 27 + len(lacing) + sum(lacing)
        page = stripped[pos:end]
        if page != original[pos:end]:
            rewritten += 1
            (crc,) = struct.unpack_from("<I", page, 22)
            assert crc == _ogg_crc_by_the_book(page[:22] + bytes(4) + page[26:])
        pos, pages = end, pages + 1
    assert rewritten > 1  # the 80 KB prompt spanned pages, and each was rewritten


@pytest.mark.parametrize("name", TAGGED_NAMES)
def test_a_damaged_audio_or_video_file_is_left_as_it_is(media: dict[str, dict[str, Any]], name: str) -> None:
    cut = media[name]["original"][:40]
    assert strip_metadata(cut, mime_of(name)) == cut
