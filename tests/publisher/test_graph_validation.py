"""Graph checks against the real engine catalog: every problem found at once, each one located."""

from __future__ import annotations

import pytest

from publisher import (
    GraphProblem,
    GraphValidationError,
    NodeCatalog,
    check_graph,
    load_workflow,
    parse_input_spec,
    types_compatible,
    validate_graph,
)
from tests.publisher.helpers import fixture_workflow, shipped_workflow


def _located(problems: list[GraphProblem]) -> set[tuple[str, str | None, str | None]]:
    return {(p.kind, p.node_id, p.input_name) for p in problems}


@pytest.mark.parametrize("name", ["txt2img_controlnet_combine.json", "img2img.json", "lora.json"])
def test_sound_fixtures_have_no_problems(catalog: NodeCatalog, name: str) -> None:
    assert validate_graph(fixture_workflow(name), catalog) == []
    check_graph(fixture_workflow(name), catalog)  # does not raise


@pytest.mark.parametrize("name", ["txt2img_sd15.json", "demo_invert.json"])
def test_shipped_workflows_are_sound(catalog: NodeCatalog, name: str) -> None:
    assert validate_graph(shipped_workflow(name), catalog) == []


def test_every_structural_problem_is_reported(catalog: NodeCatalog) -> None:
    problems = validate_graph(fixture_workflow("broken_links.json"), catalog)
    assert _located(problems) == {
        ("missing_link_source", "3", "model"),
        ("link_type_mismatch", "3", "positive"),
        ("bad_link", "3", "latent_image"),
        ("required_input_missing", "5", "height"),
        ("link_expected", "7", "clip"),
        ("bad_output_slot", "8", "vae"),
    }
    # Node 20 feeds no output: the engine ignores it, and so do we (its link to '42' dangles).
    assert all(p.node_id != "20" for p in problems)


def test_problem_messages(catalog: NodeCatalog) -> None:
    by_key = {(p.kind, p.node_id): p for p in validate_graph(fixture_workflow("broken_links.json"), catalog)}
    missing = by_key["missing_link_source", "3"]
    assert missing.class_type == "KSampler"
    assert str(missing) == (
        "Node '3' (KSampler): input 'model' is linked to node '99', which is not in the workflow; "
        "reconnect the input in ComfyUI and export again"
    )
    assert by_key["bad_output_slot", "8"].message == (
        "input 'vae' is linked to output slot 5 of node '4' (CheckpointLoaderSimple), "
        "which has 3 outputs (slots 0-2)"
    )
    assert by_key["link_type_mismatch", "3"].message == (
        "input 'positive' expects CONDITIONING but is linked to output 0 (LATENT) "
        "of node '5' (EmptyLatentImage)"
    )
    assert by_key["required_input_missing", "5"].message == (
        "required input 'height' is missing; set a value (the node's default is 512)"
    )
    assert by_key["link_expected", "7"].message == (
        "input 'clip' needs a connection from a CLIP output but holds a literal value"
    )
    assert by_key["bad_link", "3"].message.startswith("input 'latent_image' holds a malformed link ['5']")


def test_missing_required_link_input(catalog: NodeCatalog) -> None:
    wf = load_workflow(
        {
            "1": {
                "class_type": "EmptyImage",
                "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
            },
            "2": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}},
        }
    )
    (problem,) = validate_graph(wf, catalog)
    assert (problem.kind, problem.node_id, problem.input_name) == ("required_input_missing", "2", "images")
    assert problem.message == "required input 'images' is missing; connect a IMAGE output to it"


def test_missing_optional_input_is_fine(catalog: NodeCatalog) -> None:
    wf = fixture_workflow("txt2img_controlnet_combine.json")
    assert "vae" not in wf.inputs("12")  # ControlNetApplyAdvanced's optional vae
    assert validate_graph(wf, catalog) == []


def test_unknown_node_types_are_one_problem_listing_all(catalog: NodeCatalog) -> None:
    problems = validate_graph(fixture_workflow("custom_nodes.json"), catalog)
    unknown = [p for p in problems if p.kind == "unknown_node_types"]
    assert len(unknown) == 1
    assert unknown[0].missing_types == (
        ("ImpactWildcardEncode", ("10", "12")),
        ("SaveImageExtended", ("11",)),
        ("ShowText|pysssss", ("13",)),
    )
    assert unknown[0].message == (
        "Unknown node types — custom nodes the engine lacks: ImpactWildcardEncode (nodes 10, 12); "
        "SaveImageExtended (node 11); ShowText|pysssss (node 13); "
        "install their node packs (`python launch.py nodes install GIT_URL@COMMIT | REGISTRY_ID@VERSION`, or "
        "the studio's Engine tab)"
    )
    assert unknown[0].node_id is None and str(unknown[0]) == unknown[0].message
    # An unknown node may be the output node, so "no outputs" is not claimed; a dangling link
    # from an unknown node is still found.
    assert _located(problems) == {("unknown_node_types", None, None), ("missing_link_source", "13", "text")}


def test_no_output_node(catalog: NodeCatalog) -> None:
    (problem,) = validate_graph(fixture_workflow("no_outputs.json"), catalog)
    assert problem.kind == "no_outputs"
    assert problem.message == (
        "The workflow has no output node (such as Save Image or Preview Image), so the engine would refuse "
        "it (prompt_no_outputs); add a Save Image node and export again"
    )


def test_without_outputs_every_node_is_checked(catalog: NodeCatalog) -> None:
    wf = load_workflow({"1": {"class_type": "ImageInvert", "inputs": {"image": ["7", 0]}}})
    assert _located(validate_graph(wf, catalog)) == {
        ("no_outputs", None, None),
        ("missing_link_source", "1", "image"),
    }


def test_check_graph_raises_with_all_problems(catalog: NodeCatalog) -> None:
    with pytest.raises(GraphValidationError) as info:
        check_graph(fixture_workflow("broken_links.json"), catalog)
    error = info.value
    assert isinstance(error, ValueError)
    assert len(error.problems) == 6
    lines = str(error).splitlines()
    assert lines[0] == "The workflow has 6 problems:"
    assert lines[1] == f"- {error.problems[0]}"
    assert len(lines) == 7


def test_any_type_accepts_everything(catalog: NodeCatalog) -> None:
    wf = load_workflow(
        {
            "1": {
                "class_type": "EmptyImage",
                "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
            },
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
        }
    )
    assert validate_graph(wf, catalog) == []


def test_widget_converted_to_link_of_same_type(catalog: NodeCatalog) -> None:
    wf = load_workflow(
        {
            "1": {"class_type": "PrimitiveInt", "inputs": {"value": 32}},
            "2": {
                "class_type": "EmptyImage",
                "inputs": {"width": ["1", 0], "height": 8, "batch_size": 1, "color": 0},
            },
            "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
        }
    )
    assert validate_graph(wf, catalog) == []
    wf_bad = load_workflow(
        {
            "1": {"class_type": "PrimitiveFloat", "inputs": {"value": 3.5}},
            "2": {
                "class_type": "EmptyImage",
                "inputs": {"width": ["1", 0], "height": 8, "batch_size": 1, "color": 0},
            },
            "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
        }
    )
    (problem,) = validate_graph(wf_bad, catalog)
    assert (problem.kind, problem.node_id, problem.input_name) == ("link_type_mismatch", "2", "width")


def test_types_compatible_rules() -> None:
    combo = parse_input_spec("c", [["a", "b"]], required=True)
    image = parse_input_spec("i", ["IMAGE"], required=True)
    union = parse_input_spec("u", ["IMAGE,MASK"], required=True)
    anything = parse_input_spec("x", ["*"], required=True)
    assert types_compatible("COMBO", combo)  # list-typed outputs read as COMBO
    assert not types_compatible("STRING", combo)
    assert types_compatible("*", image)
    assert types_compatible("LATENT", anything)
    assert types_compatible("MASK", union)
    assert types_compatible("MASK,LATENT", union)
    assert not types_compatible("LATENT", image)


def test_combo_output_can_feed_combo_input() -> None:
    catalog = NodeCatalog.from_object_info(
        {
            "Picker": {"output": [["euler", "ddim"]], "input": {}},
            "Sampler": {
                "input": {"required": {"sampler_name": [["euler", "ddim"]]}},
                "output_node": True,
                "output": [],
            },
        }
    )
    wf = load_workflow(
        {
            "1": {"class_type": "Picker", "inputs": {}},
            "2": {"class_type": "Sampler", "inputs": {"sampler_name": ["1", 0]}},
        }
    )
    assert validate_graph(wf, catalog) == []


def test_bad_slot_on_a_node_without_outputs(catalog: NodeCatalog) -> None:
    wf = load_workflow(
        {
            "1": {
                "class_type": "EmptyImage",
                "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
            },
            "2": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
            "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
        }
    )
    (problem,) = validate_graph(wf, catalog)
    assert problem.message == (
        "input 'images' is linked to output slot 0 of node '3' (SaveImage), which has no outputs"
    )
