"""One Gradio component per published input, of the kind its type calls for; shared by the real forms
and the studio's live preview, so the preview is the form."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from app.forms.mask import mask_upload
from publisher import AppInput

TEXT_LINE_PX = 24  # about one line of a Gradio textbox: turns App Mode's box height (pixels) into lines
IMAGE_HEIGHT_PX = 260  # an image input's preview when App Mode gave it no height
SLIDER_MAX_STEPS = 4096  # past this many positions a slider is too coarse to aim with: a number box instead
SETTINGS_TYPES = frozenset({"int", "float", "bool", "choice", "seed"})
MEDIA_TYPES = frozenset({"image", "mask", "video", "audio", "file"})


@dataclass
class Field:
    """The components of one input; `randomize` is the seed's toggle."""

    spec: AppInput
    component: gr.components.Component
    randomize: gr.Checkbox | None = None

    @property
    def components(self) -> list[gr.components.Component]:
        return [self.component] + ([self.randomize] if self.randomize is not None else [])


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _number_field(spec: AppInput, common: dict[str, Any]) -> gr.components.Component:
    step = spec.step or (1 if spec.type == "int" else 0.01)
    if _finite(spec.min) and _finite(spec.max) and (spec.max - spec.min) / step <= SLIDER_MAX_STEPS:
        return gr.Slider(minimum=spec.min, maximum=spec.max, step=step, value=spec.default, **common)
    return gr.Number(value=spec.default, minimum=spec.min if _finite(spec.min) else None,
                     maximum=spec.max if _finite(spec.max) else None, step=step,
                     precision=0 if spec.type == "int" else None, **common)


def make_field(spec: AppInput, *, key: str = "") -> Field:
    """Render one input inside the current Blocks context. `key` keeps components apart in a @gr.render."""
    common: dict[str, Any] = {"label": spec.label or spec.name, "info": spec.help or None, "interactive": True,
                              "elem_id": f"input-{spec.name}"}
    if key:
        common["key"] = f"{key}-{spec.name}"
    match spec.type:
        case "text":
            if spec.max_length is not None:  # the box stops there, and says so; the service refuses longer text
                common["info"] = " ".join(filter(None, (spec.help, f"(at most {spec.max_length:,} characters)")))
            lines = 4 if spec.multiline else 1
            if spec.height:  # the box as tall as the publisher made it in ComfyUI's App Mode
                lines = max(1, round(spec.height / TEXT_LINE_PX))
            return Field(spec, gr.Textbox(value=spec.default or "", lines=lines,
                                          max_lines=max(lines, 20) if spec.multiline else lines,
                                          max_length=spec.max_length, **common))
        case "int" | "float":
            return Field(spec, _number_field(spec, common))
        case "bool":
            common.pop("info")
            return Field(spec, gr.Checkbox(value=bool(spec.default), info=spec.help or None, **common))
        case "choice":
            return Field(spec, gr.Dropdown(choices=list(spec.choices), value=spec.default, filterable=True,
                                           **common))
        case "seed":
            with gr.Row(equal_height=True):
                number = gr.Number(value=spec.default, precision=0, minimum=0, scale=3, **common)
                toggle = gr.Checkbox(value=spec.randomize, label="Random seed", scale=1,
                                     elem_id=f"input-{spec.name}-random",
                                     **({"key": f"{key}-{spec.name}-random"} if key else {}))
            return Field(spec, number, toggle)
        case "image":
            common.pop("info")
            return Field(spec, gr.Image(type="filepath", sources=["upload", "clipboard"],
                                        height=spec.height or IMAGE_HEIGHT_PX, **common))
        case "mask":  # upload a mask, or an image to paint the mask on (app.forms.mask turns it into the file)
            common.pop("info")
            return Field(spec, gr.ImageMask(type="filepath", sources=["upload", "clipboard"], format="png",
                                            height=spec.height or IMAGE_HEIGHT_PX, **common))
        case "video":
            common.pop("info")
            return Field(spec, gr.Video(sources=["upload"], height=spec.height, **common))
        case "audio":
            common.pop("info")
            return Field(spec, gr.Audio(type="filepath", sources=["upload"], **common))
        case _:
            common.pop("info")
            return Field(spec, gr.File(type="filepath", **common))


def make_fields(inputs: tuple[AppInput, ...] | list[AppInput], *, key: str = "") -> list[Field]:
    """Prompts and media first, where the eye starts; numbers, choices and the seed under "Settings"."""
    main = [i for i in inputs if i.type not in SETTINGS_TYPES]
    settings = [i for i in inputs if i.type in SETTINGS_TYPES]
    fields = [make_field(i, key=key) for i in main]
    if settings:
        with gr.Accordion("Settings", open=not main, key=f"{key}-settings" if key else None):
            fields += [make_field(i, key=key) for i in settings]
    return fields


def collect(fields: list[Field], raw: list[Any]) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
    """Component values (in `fields` order) -> (values, files). A ticked "Random seed" sends no seed, so the
    service draws one and records it."""
    values: dict[str, Any] = {}
    files: dict[str, tuple[str, bytes]] = {}
    position = 0
    for field in fields:
        value = raw[position]
        position += 1
        if field.randomize is not None:
            random = raw[position]
            position += 1
            if random or value is None:
                continue
        if field.spec.type == "mask" and isinstance(value, dict) and "layers" in value:
            if (mask := mask_upload(value)) is not None:
                files[field.spec.name] = mask
            continue
        if field.spec.type in MEDIA_TYPES:
            if value:
                path = Path(value if isinstance(value, str) else value.get("path", ""))
                files[field.spec.name] = (path.name, path.read_bytes())
            continue
        if value is None or (value == "" and field.spec.type != "text"):
            continue
        if field.spec.type in ("int", "seed") and isinstance(value, float) and value.is_integer():
            value = int(value)
        values[field.spec.name] = value
    return values, files
