"""Helpers for the Modal runtime tests: the shipped example apps as AppSpecs, and generated bundles imported
with the real `modal` package."""

from __future__ import annotations

import ast
import importlib.util
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

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
