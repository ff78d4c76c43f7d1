"""Stripping the workflow the engine embeds in output files: the metadata goes, the pixels stay bit-identical."""

from __future__ import annotations

import io
import json

from PIL import Image, PngImagePlugin

from runtimes.outputs_metadata import strip_metadata

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
