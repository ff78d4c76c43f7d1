"""The workflow's output nodes (those the engine runs the graph for) and what they produce."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .app_mode import UiMarkings
from .node_schema import NodeCatalog, NodeSchema
from .workflow import Workflow

OutputKind = Literal["image", "video", "audio", "mesh", "text", "other"]

# Checked in order against the class_type: a name says more than the input type does
# (SaveWEBM takes IMAGE frames but writes a video).
_KIND_BY_NAME: tuple[tuple[tuple[str, ...], OutputKind], ...] = (
    (("video", "webm", "mp4"), "video"),
    (("audio", "mp3", "opus", "flac"), "audio"),
    (("glb", "3d", "mesh"), "mesh"),
    # Model savers (ImageOnlyCheckpointSave, SaveLoRA, VAESave...) write files no form can show.
    (("checkpoint", "model", "lora", "latent", "clip", "vae"), "other"),
    (("image", "svg", "mask", "animated"), "image"),
    (("text", "any", "string"), "text"),
)
_KIND_BY_INPUT_TYPE: dict[str, OutputKind] = {
    "IMAGE": "image",
    "MASK": "image",
    "SVG": "image",
    "VIDEO": "video",
    "AUDIO": "audio",
    "MESH": "mesh",
    "STRING": "text",
}


@dataclass(frozen=True)
class OutputNode:
    node_id: str
    class_type: str
    kind: OutputKind
    label: str
    preview: bool  # writes temp files the engine may delete: shown, not kept
    published_by_default: bool


def output_kind(schema: NodeSchema) -> OutputKind:
    name = schema.class_type.lower()
    for needles, kind in _KIND_BY_NAME:
        if any(needle in name for needle in needles):
            return kind
    for spec in schema.inputs:
        if spec.is_link_type and spec.type in _KIND_BY_INPUT_TYPE:
            return _KIND_BY_INPUT_TYPE[spec.type]
    return "other"


def is_preview(schema: NodeSchema) -> bool:
    """PreviewImage, MaskPreview, PreviewAudio... write to the engine's temp folder."""
    return "preview" in schema.class_type.lower()


def find_outputs(workflow: Workflow, catalog: NodeCatalog, markings: UiMarkings | None = None) -> list[OutputNode]:
    """Every node whose type the engine marks as an output node, in node id order. Published by default: the save
    nodes, or exactly the outputs App Mode names when `markings` has some."""
    chosen = set(markings.outputs) if markings is not None and markings.outputs else None
    found = []
    for node_id in workflow.node_ids():
        schema = catalog.get(workflow.class_type(node_id))
        if schema is None or not schema.output_node:
            continue
        preview = is_preview(schema)
        found.append(
            OutputNode(
                node_id=node_id,
                class_type=schema.class_type,
                kind=output_kind(schema),
                label=workflow.title(node_id) or schema.display_name,
                preview=preview,
                published_by_default=not preview if chosen is None else node_id in chosen,
            )
        )
    return found


def default_published_outputs(workflow: Workflow, catalog: NodeCatalog,
                              markings: UiMarkings | None = None) -> list[OutputNode]:
    """The outputs an app returns unless the publisher chooses otherwise: App Mode's, else the save nodes."""
    return [o for o in find_outputs(workflow, catalog, markings) if o.published_by_default]
