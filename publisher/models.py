"""Model files a workflow references (checkpoints, LoRAs, VAEs...), read from loader nodes' choices."""

from __future__ import annotations

from dataclasses import dataclass

from .node_schema import NodeCatalog
from .workflow import Workflow, is_link

MODEL_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft", ".onnx")
# ComfyUI's models/ sub-folder for each loader input name (folder_paths' names).
FOLDER_BY_INPUT = {
    "ckpt_name": "checkpoints",
    "lora_name": "loras",
    "vae_name": "vae",
    "control_net_name": "controlnet",
    "unet_name": "diffusion_models",
    "clip_name": "text_encoders",
    "clip_name1": "text_encoders",
    "clip_name2": "text_encoders",
    "clip_name3": "text_encoders",
    "model_name": "upscale_models",
    "style_model_name": "style_models",
    "gligen_name": "gligen",
    "hypernetwork_name": "hypernetworks",
    "clip_vision_name": "clip_vision",
    "embedding_name": "embeddings",
}


@dataclass(frozen=True)
class ModelRef:
    node: str
    input: str
    folder: str  # under the engine's models/
    filename: str
    available: bool  # the engine lists it among the input's choices
    source: str | None = None  # where to fetch it (e.g. "hf://repo/file@revision"); set by the publisher


def find_model_refs(workflow: Workflow, catalog: NodeCatalog) -> list[ModelRef]:
    """Every COMBO value that names a model file; `available` says whether the engine has it."""
    refs = []
    for node_id in workflow.node_ids():
        schema = catalog.get(workflow.class_type(node_id))
        for name, value in workflow.inputs(node_id).items():
            if is_link(value) or not isinstance(value, str) or not value.lower().endswith(MODEL_EXTENSIONS):
                continue
            spec = schema.input(name) if schema else None
            folder = FOLDER_BY_INPUT.get(name, "unknown")
            available = bool(spec and value in spec.choices)
            refs.append(ModelRef(node_id, name, folder, value, available))
    return refs
