"""A mask drawn in a form's mask editor (gr.ImageMask) -> the image file LoadImageMask reads. The engine takes one
channel of the file (the app's workflow says which: alpha, red, green or blue; alpha is inverted, so a transparent
pixel is masked), so the file is written to mean the same on every channel: where the user painted, white and
transparent; elsewhere, black and opaque. An uploaded mask left unpainted goes as it came."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops


def mask_upload(value: Mapping[str, Any]) -> tuple[str, bytes] | None:
    """The mask editor's value ({background, layers, composite}: file paths) -> (file name, PNG bytes), or None
    when it holds nothing."""
    background = _path(value.get("background"))
    painted = _painted(value.get("layers") or [])
    if painted is None or painted.getbbox() is None:
        return (background.name, background.read_bytes()) if background is not None else None
    if background is not None:
        with Image.open(background) as image:
            if image.size != painted.size:  # the canvas is the background's size; be safe if it is not
                painted = painted.resize(image.size)
    white = Image.new("L", painted.size, 0)
    white.paste(255, mask=painted)
    mask = Image.merge("RGBA", (white, white, white, ImageChops.invert(white)))
    out = io.BytesIO()
    mask.save(out, format="PNG")
    stem = background.stem if background is not None else "mask"
    return f"{stem}-mask.png", out.getvalue()


def _painted(layers: list[Any]) -> Image.Image | None:
    """Where any layer has paint: its alpha, 255 where painted."""
    union: Image.Image | None = None
    for layer in layers:
        path = _path(layer)
        if path is None:
            continue
        with Image.open(path) as image:
            alpha = image.convert("RGBA").getchannel("A").point(lambda a: 255 if a else 0)
        union = alpha if union is None else ImageChops.lighter(union, alpha.resize(union.size))
    return union


def _path(value: Any) -> Path | None:
    if isinstance(value, str) and value:
        return Path(value)
    if isinstance(value, Mapping) and value.get("path"):
        return Path(value["path"])
    return None
