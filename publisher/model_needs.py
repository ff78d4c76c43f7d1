"""Which model files a workflow file needs when no engine is at hand to convert it (the command line's
`models pull FILE`): an API-format file's loader inputs, or a UI-format file's widget values on the engine's own
loaders, each placed by the loader table (models.py) or by the folder the file's ``properties.models`` names; and
the sha256 each file declares there."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Any

from .model_sources import _all_nodes
from .models import MODEL_EXTENSIONS, ModelRef, find_model_refs, model_folder
from .node_schema import NodeCatalog
from .workflow import detect_format, load_workflow

# The engine's loaders' model-file widgets, in the order the editor saves their values (other widgets of these
# loaders hold no file names, so the file names among widgets_values are these inputs, in this order).
LOADER_MODEL_WIDGETS = {
    **dict.fromkeys(("CheckpointLoaderSimple", "CheckpointLoader", "ImageOnlyCheckpointLoader",
                     "unCLIPCheckpointLoader", "CreateHookModelAsLora", "CreateHookModelAsLoraModelOnly"),
                    ("ckpt_name",)),
    **dict.fromkeys(("ControlNetLoader", "DiffControlNetLoader"), ("control_net_name",)),
    **dict.fromkeys(("LoraLoader", "LoraLoaderModelOnly", "CreateHookLora", "CreateHookLoraModelOnly"),
                    ("lora_name",)),
    "CLIPLoader": ("clip_name",),
    "CLIPVisionLoader": ("clip_name",),
    "DualCLIPLoader": ("clip_name1", "clip_name2"),
    "TripleCLIPLoader": ("clip_name1", "clip_name2", "clip_name3"),
    "QuadrupleCLIPLoader": ("clip_name1", "clip_name2", "clip_name3", "clip_name4"),
    "GLIGENLoader": ("gligen_name",),
    "HypernetworkLoader": ("hypernetwork_name",),
    "UpscaleModelLoader": ("model_name",),
    "LatentUpscaleModelLoader": ("model_name",),
    "ModelPatchLoader": ("name",),
    "PhotoMakerLoader": ("photomaker_model_name",),
    "StyleModelLoader": ("style_model_name",),
    "UNETLoader": ("unet_name",),
    "VAELoader": ("vae_name",),
    "AudioEncoderLoader": ("audio_encoder_name",),
}
_SILENT_MODES = (2, 4)  # muted, bypassed: the node does not run, its files are not needed


def _is_model_name(value: object) -> bool:
    return isinstance(value, str) and value.lower().endswith(MODEL_EXTENSIONS)


def _declared_folders(data: Mapping[str, Any]) -> dict[str, str]:
    """file name -> the models/ folder the file's properties.models puts it in."""
    found: dict[str, str] = {}
    for node in _all_nodes(data):
        properties = node.get("properties")
        for entry in properties.get("models") or () if isinstance(properties, Mapping) else ():
            if isinstance(entry, Mapping) and isinstance(name := entry.get("name"), str) and \
                    isinstance(folder := entry.get("directory"), str) and name and folder:
                found.setdefault(name, folder)
    return found


def declared_hashes(data: object) -> dict[str, str]:
    """``"folder/file"`` and ``"file"`` -> sha256 (lower case), for each file a UI file's properties.models gives
    a SHA256 hash for."""
    found: dict[str, str] = {}
    if not isinstance(data, Mapping):
        return found
    for node in _all_nodes(data):
        properties = node.get("properties")
        for entry in properties.get("models") or () if isinstance(properties, Mapping) else ():
            if not isinstance(entry, Mapping) or not isinstance(name := entry.get("name"), str) or \
                    not isinstance(value := entry.get("hash"), str) or \
                    str(entry.get("hash_type", "SHA256")).upper() != "SHA256":
                continue
            if isinstance(folder := entry.get("directory"), str) and folder:
                found.setdefault(f"{folder}/{name}", value.lower())
            found.setdefault(name, value.lower())
    return found


def hash_of(ref: ModelRef, hashes: Mapping[str, str]) -> str | None:
    return hashes.get(f"{ref.folder}/{ref.filename}") or hashes.get(ref.filename) or ref.sha256


def with_hashes(refs: list[ModelRef], hashes: Mapping[str, str],
                overridden: Collection[str] = ()) -> list[ModelRef]:
    """The refs with the sha256 the file declares for each (declared_hashes), kept in the spec so that a fetch of
    the published app checks it. A file whose source the publisher gave instead (`overridden`: "file" or
    "folder/file" keys) keeps none: the declared hash is the declared file's."""
    return [ref if ref.filename in overridden or f"{ref.folder}/{ref.filename}" in overridden
            else replace(ref, sha256=hash_of(ref, hashes)) for ref in refs]


def _ui_refs(data: Mapping[str, Any]) -> list[ModelRef]:
    folders = _declared_folders(data)
    refs = []
    for node in _all_nodes(data):
        values = node.get("widgets_values")
        if node.get("mode") in _SILENT_MODES or not isinstance(values, list):
            continue
        class_type, node_id = str(node.get("type", "")), str(node.get("id", "?"))
        inputs = iter(LOADER_MODEL_WIDGETS.get(class_type, ()))
        for value in filter(_is_model_name, values):
            name = next(inputs, None)
            folder = model_folder(class_type, name) if name else folders.get(value, "unknown")
            refs.append(ModelRef(node_id, name or "?", folder, value, False))
    return refs


def file_model_refs(data: object) -> list[ModelRef]:
    """The model files a workflow file (API or UI format) names, with their folders, without an engine's schemas
    (`available` is False: nothing here knows what an engine has). Raises WorkflowError for an unreadable file."""
    if detect_format(data) == "ui" and isinstance(data, Mapping):
        return _ui_refs(data)
    return find_model_refs(load_workflow(data), NodeCatalog({}))  # type: ignore[arg-type]
