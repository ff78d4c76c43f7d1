"""The per-app guard: a submitted workflow is the app's published one with only its published inputs changed."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from publisher import AppSpec, NodeCatalog, WorkflowFormatError, build_app_spec, load_any_workflow
from publisher.app_workflow_guard import AppWorkflowError, GuardProblem, app_values_from_workflow
from tests.publisher.helpers import shipped_workflow
from tests.support.prompts import demo_invert, node_of
from tests.support.templates import template

ASSET = {"__type": "core/ASSET", "info": {"id": "9f8a1c0d-2b3e-4f56-8a7b-1c2d3e4f5a6b", "hash": "blake3:ab",
                                          "file_path": "photo.png"}}


@pytest.fixture(scope="module")
def txt2img(catalog: NodeCatalog) -> AppSpec:
    return build_app_spec(shipped_workflow("txt2img_sd15.json"), catalog, [
        {"node": "6", "input": "text", "name": "prompt"},
        {"node": "3", "input": "seed", "name": "seed"},
        {"node": "5", "input": "width", "name": "width", "max": 1024, "default": 768},
        {"node": "3", "input": "sampler_name", "name": "sampler_name", "choices": ["euler", "ddim"]},
    ])


@pytest.fixture(scope="module")
def image2image(catalog: NodeCatalog) -> AppSpec:
    """A real template (UI format, converted) with a LoadImage input published."""
    workflow = load_any_workflow(template("image2image.json"), catalog)
    load = next(node for node in workflow if workflow.class_type(node) == "LoadImage")
    return build_app_spec(workflow, catalog, [{"node": load, "input": "image", "name": "photo"}])


def sent(spec: AppSpec) -> dict[str, Any]:
    """What a client starts from: the app's published workflow."""
    return copy.deepcopy(spec.workflow)


def problems_of(spec: AppSpec, workflow: dict[str, Any]) -> tuple[GuardProblem, ...]:
    with pytest.raises(AppWorkflowError) as caught:
        app_values_from_workflow(spec, workflow)
    return caught.value.problems


def test_the_published_workflow_itself_sets_every_input_as_published(txt2img: AppSpec) -> None:
    values = app_values_from_workflow(txt2img, sent(txt2img))
    # The value sent is the value used: the workflow's width 512, not the binding's default 768; its seed, not a draw.
    assert values == {"prompt": txt2img.workflow["6"]["inputs"]["text"], "seed": 156680208700286, "width": 512,
                      "sampler_name": "euler"}


def test_changed_inputs_come_back_by_name_and_titles_may_differ(txt2img: AppSpec) -> None:
    workflow = sent(txt2img)
    workflow["6"]["inputs"]["text"] = "a red fox"
    workflow["3"]["inputs"].update(seed=7, sampler_name="ddim")
    workflow["5"]["inputs"]["width"] = 640
    workflow["3"]["_meta"] = {"title": "My sampler"}
    del workflow["9"]["_meta"]
    workflow["3"]["inputs"]["cfg"] = 8.0  # the app's 8, written as a float
    values = app_values_from_workflow(txt2img, workflow)
    assert values == {"prompt": "a red fox", "seed": 7, "width": 640, "sampler_name": "ddim"}


def test_int_node_ids_and_links_are_read_as_the_engine_reads_them(txt2img: AppSpec) -> None:
    workflow = {int(node): copy.deepcopy(body) for node, body in txt2img.workflow.items()}
    workflow[8]["inputs"]["vae"] = [4, 2]
    assert app_values_from_workflow(txt2img, workflow)["width"] == 512


def test_a_published_input_left_out_keeps_the_apps_value(txt2img: AppSpec) -> None:
    workflow = sent(txt2img)
    del workflow["5"]["inputs"]["width"]
    assert "width" not in app_values_from_workflow(txt2img, workflow)


def test_a_changed_unpublished_input_is_refused_naming_the_app_inputs(txt2img: AppSpec) -> None:
    workflow = sent(txt2img)
    workflow["3"]["inputs"]["steps"] = 50
    (problem,) = problems_of(txt2img, workflow)
    assert (problem.node, problem.class_type, problem.input, problem.reason) == ("3", "KSampler", "steps",
                                                                                 "input_not_published")
    assert (problem.value, problem.allowed) == (50, 20)
    assert problem.message.startswith("node 3 (KSampler) input 'steps' is not an input of this app: it must stay 20,"
                                      " not 50; the app's inputs are: 'prompt' (node 6 input 'text'), 'seed' (node 3 "
                                      "input 'seed'), 'width' (node 5 input 'width'), 'sampler_name'")


def test_a_bool_is_not_the_number_one(catalog: NodeCatalog) -> None:
    spec = build_app_spec(load_any_workflow(demo_invert(0), catalog), catalog, [{"node": "1", "input": "color"}])
    workflow = sent(spec)
    workflow["1"]["inputs"]["batch_size"] = True
    assert problems_of(spec, workflow)[0].reason == "input_not_published"


def test_nodes_added_removed_and_retyped_are_each_named(txt2img: AppSpec) -> None:
    workflow = sent(txt2img)
    workflow["10"] = {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}
    del workflow["7"]
    workflow["9"]["class_type"] = "PreviewImage"
    problems = problems_of(txt2img, workflow)
    assert [(p.node, p.class_type, p.reason) for p in problems] == [
        ("7", "CLIPTextEncode", "node_removed"), ("9", "PreviewImage", "class_type_changed"),
        ("10", "PreviewImage", "node_added")]
    assert "node 7 (CLIPTextEncode) is missing" in problems[0].message
    assert problems[1].message.startswith("node 9 is a SaveImage in the app's workflow, not a PreviewImage")
    assert problems[2].message.startswith("node 10 (PreviewImage) is not in the app's workflow: remove it")


def test_links_cannot_change_nor_become_values(txt2img: AppSpec) -> None:
    workflow = sent(txt2img)
    workflow["3"]["inputs"]["positive"] = ["7", 0]
    workflow["8"]["inputs"]["vae"] = "taesd"
    workflow["9"]["inputs"]["filename_prefix"] = ["6", 0]
    problems = problems_of(txt2img, workflow)
    assert [(p.node, p.input, p.reason) for p in problems] == [
        ("3", "positive", "link_changed"), ("8", "vae", "link_changed"), ("9", "filename_prefix", "link_changed")]
    assert problems[0].message == ("node 3 (KSampler) input 'positive' is linked to node 6 output 0 in the app's "
                                   "workflow, not linked to node 7 output 0: the links cannot change")
    assert "not the value \"taesd\"" in problems[1].message
    assert problems[2].message.startswith("node 9 (SaveImage) input 'filename_prefix' is the value \"ComfyUI\"")


def test_inputs_added_or_left_out_of_a_node_are_refused(txt2img: AppSpec) -> None:
    workflow = sent(txt2img)
    workflow["3"]["inputs"]["eta"] = 0.5
    del workflow["3"]["inputs"]["cfg"]
    del workflow["8"]["inputs"]["samples"]
    problems = problems_of(txt2img, workflow)
    assert [(p.input, p.reason) for p in problems] == [
        ("cfg", "input_missing"), ("eta", "input_added"), ("samples", "link_changed")]
    assert problems[0].message == "node 3 (KSampler) input 'cfg' is missing: it must stay 8"
    assert problems[2].message.endswith("not left out: the links cannot change")


def test_published_values_are_judged_by_the_apply_checks(txt2img: AppSpec) -> None:
    workflow = sent(txt2img)
    workflow["5"]["inputs"]["width"] = 4096
    workflow["3"]["inputs"]["sampler_name"] = "warp-drive"
    workflow["6"]["inputs"]["text"] = 12
    workflow["3"]["inputs"]["seed"] = "soon"
    problems = problems_of(txt2img, workflow)
    by_input = {p.input: p for p in problems}
    assert set(by_input) == {"width", "sampler_name", "text", "seed"}
    assert all(p.reason == "invalid_value" for p in problems)
    assert by_input["width"].message == ("node 5 (EmptyLatentImage) input 'width' (the app's input 'width'): 4096 is "
                                         "above the maximum 1024; allowed: 16..1024")
    assert by_input["width"].allowed == {"min": 16, "max": 1024} and by_input["width"].value == 4096
    assert by_input["sampler_name"].allowed == ["euler", "ddim"]
    assert "expected text, got 12" in by_input["text"].message
    assert "expected a whole number" in by_input["seed"].message


def test_every_kind_of_problem_is_reported_at_once(txt2img: AppSpec) -> None:
    workflow = sent(txt2img)
    workflow["3"]["inputs"]["steps"] = 21
    workflow["5"]["inputs"]["width"] = 8
    workflow["5"]["inputs"]["height"] = ["4", 0]
    workflow["6"]["inputs"]["text"] = ["7", 0]  # a published input takes a value, not a link
    workflow["11"] = {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "x"}}
    with pytest.raises(AppWorkflowError) as caught:
        app_values_from_workflow(txt2img, workflow)
    error = caught.value
    assert [(p.node, p.input, p.reason) for p in error.problems] == [
        ("3", "steps", "input_not_published"), ("5", "height", "link_changed"), ("6", "text", "invalid_value"),
        ("11", None, "node_added"), ("5", "width", "invalid_value")]
    assert "it takes a value, not linked to node 7 output 0" in error.problems[2].message
    assert str(error).startswith("The workflow differs from the app's in 5 places that may not change:\n- node 3")
    errors = error.node_errors()
    assert sorted(errors) == ["11", "3", "5", "6"]
    assert errors["3"] == [{"field": "steps", "reason": "input_not_published", "class_type": "KSampler",
                            "message": error.problems[0].message, "allowed": 20}]


def test_a_seed_sent_is_the_seed_used(txt2img: AppSpec) -> None:
    assert txt2img.input("seed").randomize  # type: ignore[union-attr]  # the app draws one when none is given
    workflow = sent(txt2img)
    workflow["3"]["inputs"]["seed"] = 12345
    assert app_values_from_workflow(txt2img, workflow)["seed"] == 12345
    workflow["3"]["inputs"]["seed"] = 2**64  # beyond the engine's 64 bits: the loader refuses it
    with pytest.raises(WorkflowFormatError, match="beyond 64 bits"):
        app_values_from_workflow(txt2img, workflow)


def test_a_file_input_takes_an_asset_reference_or_a_file_name(image2image: AppSpec) -> None:
    load = image2image.input("photo").node  # type: ignore[union-attr]
    workflow = sent(image2image)
    workflow[load]["inputs"]["image"] = ASSET
    assert app_values_from_workflow(image2image, workflow) == {"photo": ASSET}
    workflow[load]["inputs"]["image"] = "uploads/cat.png"
    assert app_values_from_workflow(image2image, workflow) == {"photo": "uploads/cat.png"}


def test_a_bad_file_value_is_refused(image2image: AppSpec) -> None:
    load = image2image.input("photo").node  # type: ignore[union-attr]
    for value, said in [({"__type": "core/ASSET", "info": {"hash": "blake3:ab"}}, "'info.id' must be the asset's id"),
                        ({"__type": "core/ASSET", "info": "x"}, "'info' must be an object"),
                        ("../../etc/passwd", "is not a plain upload name"),
                        ({"id": "x"}, "expected a file name from an upload")]:
        workflow = sent(image2image)
        workflow[load]["inputs"]["image"] = value
        (problem,) = problems_of(image2image, workflow)
        assert (problem.node, problem.class_type, problem.input, problem.reason) == (load, "LoadImage", "image",
                                                                                     "invalid_value")
        assert said in problem.message and problem.value == value


def test_an_asset_reference_on_a_non_file_input_is_refused(txt2img: AppSpec) -> None:
    workflow = sent(txt2img)
    workflow["5"]["inputs"]["width"] = ASSET
    (problem,) = problems_of(txt2img, workflow)
    assert problem.input == "width" and "expected a whole number" in problem.message


def test_an_app_with_no_inputs_says_so(catalog: NodeCatalog) -> None:
    spec = build_app_spec(load_any_workflow(demo_invert(0), catalog), catalog, [])
    workflow = sent(spec)
    workflow[node_of(workflow, "EmptyImage")]["inputs"]["color"] = 1
    (problem,) = problems_of(spec, workflow)
    assert problem.message.endswith("; this app has no inputs")


def test_something_not_a_workflow_is_the_loaders_error(txt2img: AppSpec) -> None:
    with pytest.raises(WorkflowFormatError, match="UI-format"):
        app_values_from_workflow(txt2img, {"nodes": [], "links": []})
