"""Test workflows built from the shipped examples, with the values a test needs."""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.support.paths import WORKFLOWS


def shipped(name: str) -> dict[str, Any]:
    return json.loads((WORKFLOWS / name).read_text())


def node_of(prompt: dict[str, Any], class_type: str) -> str:
    """The id of the (single) node of a class in a workflow."""
    (node_id,) = [nid for nid, node in prompt.items() if node["class_type"] == class_type]
    return node_id


def demo_invert(color: int, size: int = 64, prefix: str = "test/demo") -> dict[str, Any]:
    prompt = copy.deepcopy(shipped("demo_invert.json"))
    empty = prompt[node_of(prompt, "EmptyImage")]["inputs"]
    empty.update(color=color, width=size, height=size)
    prompt[node_of(prompt, "SaveImage")]["inputs"]["filename_prefix"] = prefix
    return prompt


def load_invert(image: str, prefix: str = "test/loaded") -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }


def txt2img(ckpt: str, *, size: int = 64, steps: int = 2, seed: int = 0, prefix: str = "test/t2i",
            text: str = "a red fox in the snow") -> dict[str, Any]:
    prompt = copy.deepcopy(shipped("txt2img_sd15.json"))
    prompt[node_of(prompt, "CheckpointLoaderSimple")]["inputs"]["ckpt_name"] = ckpt
    prompt[node_of(prompt, "EmptyLatentImage")]["inputs"].update(width=size, height=size, batch_size=1)
    prompt[node_of(prompt, "KSampler")]["inputs"].update(steps=steps, seed=seed)
    prompt[node_of(prompt, "SaveImage")]["inputs"]["filename_prefix"] = prefix
    positive = prompt[node_of(prompt, "KSampler")]["inputs"]["positive"][0]
    prompt[positive]["inputs"]["text"] = text
    return prompt
