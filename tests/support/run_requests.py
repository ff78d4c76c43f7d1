"""Run requests for the executor and pool tests, and the pixels to check their outputs by."""

from __future__ import annotations

import io
import uuid
from typing import Any

from PIL import Image

from publisher import InputBinding
from runtimes.contract import RunRequest
from tests.support.prompts import demo_invert, node_of, txt2img

COLOR = InputBinding(node="1", input="color", type="int", name="color", min=0, max=0xFFFFFF)


def new_run_id() -> str:
    return uuid.uuid4().hex


def png(color: tuple[int, int, int], size: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, format="PNG")
    return buffer.getvalue()


def image_of(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def inverted(color: int) -> tuple[int, int, int]:
    """The pixel the demo (EmptyImage of `color` -> ImageInvert) produces."""
    return (0xFF - (color >> 16 & 0xFF), 0xFF - (color >> 8 & 0xFF), 0xFF - (color & 0xFF))


def demo_request(color: int, *, run_id: str | None = None, **fields: Any) -> RunRequest:
    """The model-free demo with its colour published as the input `color`."""
    fields.setdefault("values", {"color": color})
    return RunRequest(run_id=run_id or new_run_id(), workflow=demo_invert(0, size=16), bindings=(COLOR,), **fields)


def txt2img_request(ckpt: str, *, size: int = 64, steps: int = 2, run_id: str | None = None,
                    **fields: Any) -> RunRequest:
    """txt2img with a drawn seed (published as `seed`, randomized) and the prompt text as `prompt`."""
    workflow = txt2img(ckpt, size=size, steps=steps)
    sampler = node_of(workflow, "KSampler")
    positive = workflow[sampler]["inputs"]["positive"][0]
    bindings = (
        InputBinding(node=sampler, input="seed", type="seed", name="seed", randomize=True,
                     min=0, max=0xFFFFFFFFFFFFFFFF),
        InputBinding(node=positive, input="text", type="text", name="prompt"),
    )
    fields.setdefault("values", {"prompt": "a lighthouse at dusk"})
    return RunRequest(run_id=run_id or new_run_id(), workflow=workflow, bindings=bindings, **fields)
