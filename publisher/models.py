"""Model files a workflow references (checkpoints, LoRAs, VAEs...), read from loader nodes' choices."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from .node_schema import NodeCatalog
from .workflow import Workflow, is_link

# hf://owner/repo/path/in/repo.safetensors[@revision]: a file of a Hugging Face repository.
HF_SOURCE = re.compile(r"^hf://(?P<repo>[^/@\s]+/[^/@\s]+)/(?P<file>[^@\s]+?)(?:@(?P<rev>[^@\s]+))?$")
MODEL_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft", ".onnx")
# ComfyUI's models/ sub-folder (folder_paths' names) for a loader input name: the fallback for nodes of other packs,
# which name their inputs as the core loaders do.
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
    "clip_name4": "text_encoders",
    "model_name": "upscale_models",
    "style_model_name": "style_models",
    "gligen_name": "gligen",
    "hypernetwork_name": "hypernetworks",
    "clip_vision_name": "clip_vision",
    "embedding_name": "embeddings",
    "audio_encoder_name": "audio_encoders",
    "photomaker_model_name": "photomaker",
}
# The engine's own loaders whose input names mean another folder than the fallback above (the same name serves
# two folders), or a name too plain for it. Checked against the engine's folders by tests/publisher/test_models.py.
FOLDER_BY_LOADER_INPUT = {
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("LatentUpscaleModelLoader", "model_name"): "latent_upscale_models",
    ("ModelPatchLoader", "name"): "model_patches",
    ("TrainLoraNode", "existing_lora"): "loras",
}


def model_folder(class_type: str, input_name: str) -> str:
    """The models/ sub-folder a loader's input lists its files from; "unknown" for an input no table knows."""
    return FOLDER_BY_LOADER_INPUT.get((class_type, input_name)) or FOLDER_BY_INPUT.get(input_name, "unknown")


@dataclass(frozen=True)
class ModelRef:
    node: str
    input: str
    folder: str  # under the engine's models/
    filename: str
    available: bool  # the engine lists it among the input's choices
    source: str | None = None  # where to fetch it (e.g. "hf://repo/file@revision"); set by the publisher
    sha256: str | None = None  # the file's hash, when the workflow file declares one (properties.models)


def find_model_refs(workflow: Workflow, catalog: NodeCatalog) -> list[ModelRef]:
    """Every COMBO value that names a model file; `available` says whether the engine has it."""
    refs = []
    for node_id in workflow.node_ids():
        schema = catalog.get(workflow.class_type(node_id))
        for name, value in workflow.inputs(node_id).items():
            if is_link(value) or not isinstance(value, str) or not value.lower().endswith(MODEL_EXTENSIONS):
                continue
            spec = schema.input(name) if schema else None
            folder = model_folder(workflow.class_type(node_id), name)
            available = bool(spec and value in spec.choices)
            refs.append(ModelRef(node_id, name, folder, value, available))
    return refs


def with_sources(refs: list[ModelRef], sources: Mapping[str, str], problems: list[str]) -> list[ModelRef]:
    """The refs with the publisher's sources set, keyed by file name or folder/file name; what does not fit is
    added to `problems` (a name the workflow does not reference, a source that is not hf://owner/repo/file)."""
    known = {key: ref for ref in refs for key in (ref.filename, f"{ref.folder}/{ref.filename}")}
    chosen: dict[tuple[str, str], str] = {}
    for key, source in sources.items():
        ref = known.get(key)
        if ref is None:
            listed = ", ".join(sorted(f"{r.folder}/{r.filename}" for r in refs)) or "none"
            problems.append(f"model_sources: '{key}' is not a model file this workflow uses (it uses: {listed})")
        elif not isinstance(source, str) or HF_SOURCE.match(source) is None:
            problems.append(f"model_sources['{key}']: {source!r} is not a source: give "
                            "hf://owner/repo/path/to/file.safetensors, optionally @revision")
        else:
            chosen[(ref.folder, ref.filename)] = source
    return [replace(ref, source=chosen.get((ref.folder, ref.filename), ref.source)) for ref in refs]
