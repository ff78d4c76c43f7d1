"""Helpers for the Modal runtime tests: the shipped example apps as AppSpecs, and generated bundles imported
with the real `modal` package."""

from __future__ import annotations

import ast
import importlib.util
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import modal

from publisher import AppInput, AppSpec
from publisher.appspec import AppOutput
from runtimes.modal.host.generate import Bundle
from tests.support.prompts import node_of, shipped, txt2img


def demo_spec() -> AppSpec:
    workflow = shipped("demo_invert.json")
    workflow[node_of(workflow, "EmptyImage")]["inputs"].update(width=16, height=16)
    return AppSpec(workflow=workflow,
                   inputs=(AppInput(node="1", input="color", type="int", name="color", min=0, max=0xFFFFFF),),
                   outputs=(AppOutput(node_of(workflow, "SaveImage"), "image", "Image"),))


def txt2img_spec(ckpt: str = "sd15-random-tiny.safetensors") -> AppSpec:
    from publisher.models import ModelRef

    workflow = txt2img(ckpt, size=64, steps=2)
    sampler, loader = node_of(workflow, "KSampler"), node_of(workflow, "CheckpointLoaderSimple")
    positive = workflow[sampler]["inputs"]["positive"][0]
    return AppSpec(
        workflow=workflow,
        inputs=(AppInput(node=positive, input="text", type="text", name="prompt"),
                AppInput(node=sampler, input="seed", type="seed", name="seed", randomize=True, min=0,
                         max=0xFFFFFFFFFFFFFFFF)),
        outputs=(AppOutput(node_of(workflow, "SaveImage"), "image", "Image"),),
        models=(ModelRef(loader, "ckpt_name", "checkpoints", ckpt, True,
                         source="hf://Comfy-Org/stable-diffusion-v1-5-archive/v1-5-pruned-emaonly-fp16.safetensors"),),
    )


def import_bundle(bundle: Bundle, directory: Path) -> ModuleType:
    """Write the bundle and import its modal_app.py as a fresh module (as `modal deploy` would)."""
    path = bundle.write(directory)
    name = f"modal_app_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def decorator_kwargs(source: str, target: str) -> dict[str, Any]:
    """Keyword arguments of the decorator call `target` (e.g. 'app.cls') in a generated file, as Python values."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef | ast.FunctionDef):
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and ast.unparse(deco.func) == target:
                    return {kw.arg: _value(kw.value) for kw in deco.keywords if kw.arg}
    raise AssertionError(f"no @{target}(...) in the generated file")


def _value(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        return ast.unparse(node)


@dataclass(frozen=True)
class ImageLayer:
    """One layer of a modal.Image as modal would build it: Dockerfile commands, or files added at container start
    (a mount); `files` maps a path in the image to the local file it comes from."""

    commands: tuple[str, ...]
    files: dict[str, Path]
    mount: bool


def image_layers(image: modal.Image) -> list[ImageLayer]:
    """The layers of `image`, base first, read from modal's own (offline) layer definitions: what modal would send."""
    from modal._utils.async_utils import synchronizer

    layers: list[ImageLayer] = []
    current = synchronizer._translate_in(image)
    while current is not None:
        cells = dict(zip(current._load.__code__.co_freevars,
                         (cell.cell_contents for cell in current._load.__closure__ or ()), strict=True))
        if "mount" in cells:  # add_local_* without copy: a mount layer on top of its base
            layers.append(ImageLayer((), _mount_files(cells["mount"]), mount=True))
            current = cells["base_image"]
            continue
        dockerfile = cells["dockerfile_function"]
        context = cells["context_mount_function"]
        commands = tuple(dockerfile(BUILDER_VERSION).commands) if dockerfile else ()
        files = _mount_files(context(BUILDER_VERSION)) if context else {}
        layers.append(ImageLayer(commands, files, mount=False))
        bases = list(cells["base_images"].values())
        current = bases[0] if bases else None
    return layers[::-1]


BUILDER_VERSION = "2025.06"


def _mount_files(mount: Any) -> dict[str, Path]:
    entries = getattr(mount, "_entries", None) or []
    return {str(entry.remote_path): Path(entry.local_file) for entry in entries if hasattr(entry, "local_file")}
