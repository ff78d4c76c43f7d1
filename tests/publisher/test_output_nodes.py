"""Output nodes: which ones an app returns by default, and what kind of media they produce."""

from __future__ import annotations

from publisher import NodeCatalog, OutputNode, default_published_outputs, find_outputs, load_workflow
from tests.publisher.helpers import fixture_workflow, shipped_workflow


def test_save_image_is_published_preview_is_not(catalog: NodeCatalog) -> None:
    outputs = find_outputs(fixture_workflow("txt2img_controlnet_combine.json"), catalog)
    assert outputs == [
        OutputNode("9", "SaveImage", "image", "Save Image", preview=False, published_by_default=True),
        OutputNode("15", "PreviewImage", "image", "Preview Image", preview=True, published_by_default=False),
    ]
    assert [
        o.node_id
        for o in default_published_outputs(fixture_workflow("txt2img_controlnet_combine.json"), catalog)
    ] == ["9"]


def test_shipped_workflows_publish_their_save_node(catalog: NodeCatalog) -> None:
    assert [
        (o.node_id, o.kind) for o in default_published_outputs(shipped_workflow("txt2img_sd15.json"), catalog)
    ] == [("9", "image")]
    assert [
        (o.node_id, o.label) for o in default_published_outputs(shipped_workflow("demo_invert.json"), catalog)
    ] == [("3", "Save Image")]


def test_kinds_of_engine_output_nodes(catalog: NodeCatalog) -> None:
    wf = load_workflow(
        {
            "1": {"class_type": "SaveAudio", "inputs": {"audio": ["9", 0], "filename_prefix": "a"}},
            "2": {"class_type": "SaveVideo", "inputs": {"video": ["9", 0], "filename_prefix": "v"}},
            "3": {"class_type": "SaveGLB", "inputs": {"mesh": ["9", 0], "filename_prefix": "m"}},
            "4": {"class_type": "PreviewAny", "inputs": {"source": ["9", 0]}},
            "5": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["9", 0]}},
            "6": {"class_type": "SaveWEBM", "inputs": {"images": ["9", 0]}},
            "7": {"class_type": "CheckpointSave", "inputs": {}},
            "8": {"class_type": "PreviewAudio", "inputs": {"audio": ["9", 0]}},
            "9": {"class_type": "LoadImage", "inputs": {"image": "x.png"}},
            "10": {"class_type": "MaskPreview", "inputs": {"mask": ["9", 1]}},
            "11": {"class_type": "SaveLatent", "inputs": {}},
        }
    )
    found = {o.node_id: (o.kind, o.preview) for o in find_outputs(wf, catalog)}
    assert found == {
        "1": ("audio", False),
        "2": ("video", False),
        "3": ("mesh", False),
        "4": ("text", True),
        "5": ("image", False),
        "6": ("video", False),
        "7": ("other", False),
        "8": ("audio", True),
        "10": ("image", True),
        "11": ("other", False),
    }


def test_unknown_types_are_not_outputs(catalog: NodeCatalog) -> None:
    outputs = find_outputs(fixture_workflow("custom_nodes.json"), catalog)
    assert outputs == []  # SaveImageExtended is unknown to this engine


def test_no_outputs(catalog: NodeCatalog) -> None:
    assert find_outputs(fixture_workflow("no_outputs.json"), catalog) == []
