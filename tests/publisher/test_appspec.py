"""Building the published AppSpec: every choice checked against the workflow and the engine's schema."""

from __future__ import annotations

import json

import pytest

from publisher import AppSpec, AppSpecError, NodeCatalog, build_app_spec
from tests.publisher.helpers import fixture_workflow, shipped_workflow


def test_inputs_are_typed_from_the_engine_with_overrides(catalog: NodeCatalog) -> None:
    spec = build_app_spec(shipped_workflow("txt2img_sd15.json"), catalog, [
        {"node": "6", "input": "text", "name": "prompt"},
        {"node": "3", "input": "seed"},
        {"node": "5", "input": "width", "label": "Width", "max": 1024, "default": 768},
    ])
    prompt, seed, width = spec.inputs
    assert (prompt.name, prompt.type, prompt.multiline) == ("prompt", "text", True)
    assert (seed.type, seed.randomize, seed.min) == ("seed", True, 0)
    assert (width.name, width.label, width.min, width.max, width.step, width.default) == (
        "width", "Width", 16, 1024, 8, 768)
    assert [(o.node, o.kind) for o in spec.outputs] == [("9", "image")]
    assert spec.models[0].folder == "checkpoints" and spec.models[0].filename == "v1-5-pruned-emaonly.safetensors"


def test_spec_round_trips_through_json(catalog: NodeCatalog) -> None:
    spec = build_app_spec(shipped_workflow("txt2img_sd15.json"), catalog, [
        {"node": "3", "input": "sampler_name", "choices": ["euler", "ddim"], "help": "pick one"},
    ], timeout_s=120)
    again = AppSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.inputs[0].choices == ("euler", "ddim") and again.timeout_s == 120


def test_every_problem_is_reported_at_once(catalog: NodeCatalog) -> None:
    with pytest.raises(AppSpecError) as caught:
        build_app_spec(shipped_workflow("txt2img_sd15.json"), catalog, [
            {"node": "99", "input": "text"},
            {"node": "3", "input": "model"},
            {"node": "3", "input": "steps", "min": 50, "max": 10},
            {"node": "3", "input": "sampler_name", "choices": ["euler", "warp-drive"]},
            {"node": "5", "input": "width", "name": "2wide"},
            {"node": "6", "input": "text", "name": "prompt"},
            {"node": "7", "input": "text", "name": "prompt"},
        ], outputs=["8"])
    problems = caught.value.problems
    assert "input #1 (99.text): node '99' is not in the workflow" in problems[0]
    assert "input 'model' of node 3 (KSampler) is connected to another node, not a value" in problems[1]
    assert "min 50 is greater than max 10" in problems[2]
    assert "choices ['warp-drive'] are not offered by the engine" in problems[3]
    assert "name '2wide' must start with a letter" in problems[4]
    assert "have the same name 'prompt'" in problems[5]
    assert "output node '8' is not an output node of the workflow (output nodes: 9)" in problems[6]
    assert len(problems) == 7


def test_bounds_beyond_the_engine_and_bad_defaults_are_refused(catalog: NodeCatalog) -> None:
    with pytest.raises(AppSpecError) as caught:
        build_app_spec(shipped_workflow("txt2img_sd15.json"), catalog,
                       [{"node": "3", "input": "steps", "max": 20000}])
    assert caught.value.problems == ["input #1 (3.steps): max 20000 is above what the engine accepts (10000)"]
    with pytest.raises(AppSpecError, match="default of input 'steps'"):
        build_app_spec(shipped_workflow("txt2img_sd15.json"), catalog,
                       [{"node": "3", "input": "steps", "name": "steps", "max": 10}])  # workflow says 20


def test_required_inputs_have_no_fallback_default(catalog: NodeCatalog) -> None:
    spec = build_app_spec(fixture_workflow("img2img.json"), catalog, [
        {"node": node, "input": "image", "required": True}
        for node in fixture_workflow("img2img.json").node_ids()
        if fixture_workflow("img2img.json").class_type(node) == "LoadImage"
    ])
    (image,) = spec.inputs
    assert (image.type, image.required, image.default) == ("image", True, None)


def test_a_workflow_without_a_save_node_needs_explicit_outputs(catalog: NodeCatalog) -> None:
    workflow = shipped_workflow("demo_invert.json").to_prompt()
    workflow["3"] = {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}
    from publisher import load_workflow

    with pytest.raises(AppSpecError, match="has no save node to publish"):
        build_app_spec(load_workflow(workflow), catalog, [])
    spec = build_app_spec(load_workflow(workflow), catalog, [], outputs=["3"])
    assert [(o.node, o.kind) for o in spec.outputs] == [("3", "image")]


def test_model_sources_are_checked_and_kept_for_deployment(catalog: NodeCatalog) -> None:
    source = "hf://Comfy-Org/stable-diffusion-v1-5-archive/v1-5-pruned-emaonly-fp16.safetensors@main"
    spec = build_app_spec(shipped_workflow("txt2img_sd15.json"), catalog, [],
                          model_sources={"checkpoints/v1-5-pruned-emaonly.safetensors": source})
    (model,) = spec.models
    assert model.source == source and AppSpec.from_dict(json.loads(json.dumps(spec.to_dict()))).models[0] == model
    with pytest.raises(AppSpecError) as refused:
        build_app_spec(shipped_workflow("txt2img_sd15.json"), catalog, [],
                       model_sources={"v1-5-pruned-emaonly.safetensors": "https://example.com/model.safetensors",
                                      "sdxl.safetensors": source})
    first, second = refused.value.problems
    assert "'https://example.com/model.safetensors' is not a source: give hf://owner/repo" in first
    assert "'sdxl.safetensors' is not a model file this workflow uses (it uses: " \
           "checkpoints/v1-5-pruned-emaonly.safetensors)" in second


def test_a_height_is_checked_kept_and_optional_in_stored_specs(catalog: NodeCatalog) -> None:
    workflow = shipped_workflow("txt2img_sd15.json")
    spec = build_app_spec(workflow, catalog, [{"node": "6", "input": "text", "name": "prompt", "height": 160.4}])
    assert spec.inputs[0].height == 160
    assert AppSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    stored = spec.to_dict()
    del stored["inputs"][0]["height"]  # a version published before heights
    assert AppSpec.from_dict(stored).inputs[0].height is None
    with pytest.raises(AppSpecError, match=r"input #1 \(6.text\): height must be a number of pixels from 1 to 4000"):
        build_app_spec(workflow, catalog, [{"node": "6", "input": "text", "height": -5}])
