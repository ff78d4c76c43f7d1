"""ComfyUI App Mode markings (extra.linearData) decide the suggested inputs, their order and the published outputs;
other tools' marker nodes are suggested; a missing node type is named with the pack the file says provides it."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given

from publisher import (
    NodeCatalog,
    WorkflowFormatError,
    build_app_spec,
    find_candidates,
    find_outputs,
    load_workflow,
)
from publisher.app_mode import AppModeInput, load_marked_workflow, read_ui_markings, unresolved_markings
from publisher.node_packs import MissingNodeTypesError

from .helpers import fixture_json
from .mutations import HUGE, JSON_VALUES
from .test_fuzz_workflows import FUZZ

TXT2IMG = "ui_app_mode_txt2img.app.json"  # inputs in an order of their own, one with a height, no outputs
WITH_OUTPUTS = "ui_app_mode_outputs.app.json"  # inputs and an output (an active preview)
# ui_subgraphs_nested.json with App Mode naming widgets promoted onto its two subgraph instances, each the way an
# editor writes it (frontend 1.58.1 appModeStore / AppBuilder): a widget id "<workflow id>:10:blur_radius" (a subgraph
# input of instance 10), [12, "upscale_method", {height}] (an inner widget instance 12 shows through proxyWidgets),
# [5, "scale_by"] (the older form: the inner node's own id, which one top-level instance promotes).
PROMOTED = "ui_app_mode_subgraph.app.json"


def _suggested(ui: dict[str, Any], catalog: NodeCatalog) -> list[tuple[str, str]]:
    workflow, markings = load_marked_workflow(ui, catalog)
    return [(c.node_id, c.input_name) for c in find_candidates(workflow, catalog, markings) if c.suggested]


def test_app_mode_inputs_are_exactly_the_suggested_ones_in_its_order(catalog: NodeCatalog) -> None:
    ui = fixture_json(TXT2IMG)
    # The PrimitiveNode's widget (node 10) stands for KSampler's steps, which it feeds.
    assert _suggested(ui, catalog) == [("6", "text"), ("5", "width"), ("3", "steps"), ("3", "seed")]

    workflow, markings = load_marked_workflow(ui, catalog)
    candidates = find_candidates(workflow, catalog, markings)
    assert [(c.node_id, c.input_name) for c in candidates[:4]] == _suggested(ui, catalog)  # the form's order
    assert all(c.reason == "chosen in ComfyUI's App Mode" for c in candidates[:4])
    # What would be suggested without App Mode (the negative prompt, cfg, height) is not.
    unmarked = {(c.node_id, c.input_name) for c in candidates[4:]}
    assert {("7", "text"), ("3", "cfg"), ("5", "height")} <= unmarked
    assert not any(c.suggested for c in candidates[4:])


def test_without_app_mode_the_usual_suggestions_stay(catalog: NodeCatalog) -> None:
    ui = fixture_json(TXT2IMG)
    del ui["extra"]["linearData"]
    assert ("7", "text") in _suggested(ui, catalog) and ("5", "height") in _suggested(ui, catalog)


def test_the_widget_with_a_height_and_linear_mode_are_read(catalog: NodeCatalog) -> None:
    markings = read_ui_markings(fixture_json(TXT2IMG))
    assert markings.linear_mode is True
    assert markings.inputs[0].node_id == "6" and markings.inputs[0].height == 160.0
    assert markings.inputs[1].height is None
    assert markings.outputs == ()


def test_the_height_app_mode_gave_a_widget_reaches_its_candidate_and_the_spec(catalog: NodeCatalog) -> None:
    workflow, markings = load_marked_workflow(fixture_json(TXT2IMG), catalog)
    chosen = [c for c in find_candidates(workflow, catalog, markings) if c.suggested]
    assert [(c.node_id, c.input_name, c.height) for c in chosen][:2] == [("6", "text", 160.0), ("5", "width", None)]
    spec = build_app_spec(workflow, catalog, [{"node": c.node_id, "input": c.input_name, "height": c.height}
                                              for c in chosen if c.height is not None])
    assert [(i.node, i.input, i.height) for i in spec.inputs] == [("6", "text", 160)]


def test_an_entry_that_names_no_value_is_reported_not_refused(catalog: NodeCatalog) -> None:
    ui = fixture_json(TXT2IMG)
    ui["extra"]["linearData"]["inputs"] += [[99, "text"], "junk", [3]]
    workflow, markings = load_marked_workflow(ui, catalog)
    candidates = find_candidates(workflow, catalog, markings)
    problems = unresolved_markings(markings, workflow, {(c.node_id, c.input_name) for c in candidates},
                                   {o.node_id for o in find_outputs(workflow, catalog, markings)})
    text = "\n".join(problems)
    assert "[3, 'control_after_generate']: node 3 (KSampler) has no input 'control_after_generate'" in text
    assert "node 99 is not in the converted workflow" in text
    assert "App Mode input #7 'junk' is not [node id, widget name]" in text
    assert "App Mode input #8 [3] is not" in text


def test_promoted_widgets_are_the_inner_inputs_the_expansion_feeds(catalog: NodeCatalog) -> None:
    workflow, markings = load_marked_workflow(fixture_json(PROMOTED), catalog)
    assert [(i.node_id, i.widget, i.height) for i in markings.inputs] == [
        ("10:1", "blur_radius", None), ("12:5", "upscale_method", 96.0), ("12:5", "scale_by", None)]
    assert markings.problems == ()
    candidates = find_candidates(workflow, catalog, markings)
    assert [(c.node_id, c.input_name) for c in candidates if c.suggested] == [
        ("10:1", "blur_radius"), ("12:5", "upscale_method"), ("12:5", "scale_by")]
    # the value the instance holds is the value the converted inner input holds
    assert workflow.inputs("10:1")["blur_radius"] == 3 and workflow.inputs("12:5")["scale_by"] == 0.5


def test_a_promoted_widget_that_is_not_there_or_is_ambiguous_is_reported(catalog: NodeCatalog) -> None:
    ui = fixture_json(PROMOTED)
    ui["nodes"].append({**next(n for n in ui["nodes"] if n["id"] == 12), "id": 30})  # a second "Scale" instance
    ui["extra"]["linearData"]["inputs"] = [[10, "radius"], [5, "scale_by"], [2, "filename_prefix"]]
    markings = read_ui_markings(ui)
    assert markings.inputs == (AppModeInput("2", "filename_prefix"),)  # a plain node's widget is kept as it was
    text = "\n".join(markings.problems)
    assert "[10, 'radius']: node 10 is the subgraph 'Blur, invert, scale', which shows no widget 'radius'" in text
    assert "[5, 'scale_by']: node 5 inside a subgraph is shown by several instances (12, 30)" in text


def test_app_mode_outputs_are_exactly_the_published_ones(catalog: NodeCatalog) -> None:
    workflow, markings = load_marked_workflow(fixture_json(WITH_OUTPUTS), catalog)
    published = {o.node_id: o.published_by_default for o in find_outputs(workflow, catalog, markings)}
    assert published == {"3": False, "7": True}  # the preview App Mode chose, not the save node
    assert [(c.node_id, c.input_name) for c in find_candidates(workflow, catalog, markings) if c.suggested] == [
        ("1", "height"), ("1", "color"), ("1", "width")]  # the '$' title would have marked batch_size too


def test_app_mode_without_outputs_keeps_the_save_nodes(catalog: NodeCatalog) -> None:
    workflow, markings = load_marked_workflow(fixture_json(TXT2IMG), catalog)
    assert [o.node_id for o in find_outputs(workflow, catalog, markings) if o.published_by_default] == ["9"]


@pytest.mark.parametrize("broken", [{"inputs": "all"}, "yes", {"inputs": [[1, 5]], "outputs": [{"id": 3}]}])
def test_a_broken_app_mode_section_never_stops_the_analysis(catalog: NodeCatalog, broken: object) -> None:
    ui = fixture_json(WITH_OUTPUTS)
    ui["extra"]["linearData"] = broken
    workflow, markings = load_marked_workflow(ui, catalog)
    assert markings.inputs == () and markings.outputs == () and markings.problems
    assert any(c.suggested for c in find_candidates(workflow, catalog, markings))  # the usual suggestions


def test_an_api_format_file_has_no_markings(catalog: NodeCatalog) -> None:
    workflow, markings = load_marked_workflow(fixture_json("img2img.json"), catalog)
    assert markings.inputs == () and not markings.linear_mode and len(workflow) > 0


def test_marker_nodes_of_other_tools_are_suggested(catalog: NodeCatalog) -> None:
    workflow = load_workflow({
        "1": {"class_type": "ComfyUIDeployExternalText",
              "inputs": {"input_id": "style", "default_value": "oil", "display_name": "Style", "description": ""}},
        "2": {"class_type": "CPackInputInt", "inputs": {"value": 7, "min": 0, "max": 10}, "_meta": {"title": "n"}},
        "3": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
    })
    suggested = {c.key: c for c in find_candidates(workflow, catalog) if c.suggested}
    assert set(suggested) >= {"1.default_value", "2.value"}
    assert not {"1.input_id", "1.display_name", "2.min", "2.max"} & set(suggested)
    assert suggested["1.default_value"].label == "Style" and suggested["2.value"].label == "n"


def test_a_missing_node_type_is_named_with_its_pack(catalog: NodeCatalog) -> None:
    with pytest.raises(MissingNodeTypesError) as refused:
        load_marked_workflow(fixture_json("ui_missing_pack.json"), catalog)
    message = str(refused.value)
    assert ("node 2 (FancyInvert) is not installed on this engine, provided by the node pack 'comfyui-fancy-nodes' "
            "version 1.4.2 (Comfy Registry)") in message
    assert "node 5 (GitBlur) is not installed on this engine, provided by the node pack 'someone/comfyui-gitblur' " \
           "version 0a1b2c3d (GitHub)" in message
    missing = {m.class_type: (m.nodes, m.pack.to_dict() if m.pack else None) for m in refused.value.missing}
    assert missing == {
        "FancyInvert": (("2",), {"id": "comfyui-fancy-nodes", "version": "1.4.2", "source": "registry",
                        "pin": "comfyui-fancy-nodes@1.4.2"}),
        "GitBlur": (("5",), {"id": "someone/comfyui-gitblur", "version": "0a1b2c3d", "source": "github",
                    "pin": None}),
    }


def test_a_missing_node_without_pack_properties_is_refused_as_before(catalog: NodeCatalog) -> None:
    ui = fixture_json("ui_missing_pack.json")
    for node in ui["nodes"]:
        node.pop("properties", None)
    with pytest.raises(MissingNodeTypesError) as refused:
        load_marked_workflow(ui, catalog)
    assert "node 2 (FancyInvert) is not installed on this engine: install it" in str(refused.value)
    assert all(m.pack is None for m in refused.value.missing)


def _ksampler_ui(values: list[Any]) -> dict[str, Any]:
    ui = copy.deepcopy(fixture_json("ui_txt2img_sd15.json"))
    sampler = next(n for n in ui["nodes"] if n["id"] == 3)
    sampler["widgets_values"] = values
    sampler["inputs"] = [i for i in sampler["inputs"] if i.get("name") != "steps"]  # not fed by the primitive
    sampler["properties"] = {"cnr_id": "comfy-core", "ver": "0.3.10"}
    return ui


def test_widget_values_of_another_node_version_name_node_input_and_value(catalog: NodeCatalog) -> None:
    # A KSampler saved by a version with an extra widget before 'steps': one value more than this engine takes.
    with pytest.raises(WorkflowFormatError) as refused:
        load_marked_workflow(_ksampler_ui([5, "randomize", "extra", 20, 8, "euler", "normal", 1]), catalog)
    message = str(refused.value)
    assert ("node 3 (KSampler): widget value 'extra' does not fit input 'steps' (INT), saved as widgets_values[2]"
            in message)
    assert "the file saved 8 widget values where this engine's KSampler takes 7 (its widgets: seed, steps" in message
    assert "(saved with ComfyUI 0.3.10)" in message


def test_widget_values_of_another_pack_version_name_the_pack(catalog: NodeCatalog) -> None:
    ui = _ksampler_ui([5, "randomize", "extra", 20, 8, "euler", "normal", 1])
    next(n for n in ui["nodes"] if n["id"] == 3)["properties"] = {"aux_id": "someone/samplers", "ver": "abc1234"}
    with pytest.raises(WorkflowFormatError) as refused:
        load_marked_workflow(ui, catalog)
    assert ("(saved with the node pack 'someone/samplers' version abc1234 (GitHub)): install that version of the "
            "pack here, or open and save") in str(refused.value)


@FUZZ
@given(linear=JSON_VALUES, mode=JSON_VALUES, properties=JSON_VALUES)
def test_any_app_mode_section_or_properties_is_read_without_an_error(
        catalog: NodeCatalog, linear: object, mode: object, properties: object) -> None:
    # The markings are read leniently: whatever the file holds there, the analysis goes on and says what it skipped.
    ui = fixture_json(WITH_OUTPUTS)
    ui["extra"].update(linearData={"inputs": linear, "outputs": linear} if isinstance(linear, list) else linear,
                       linearMode=mode)
    ui["nodes"][0]["properties"] = properties
    workflow, markings = load_marked_workflow(ui, catalog)
    assert all(len(p) < 2000 and HUGE[:300] not in p for p in markings.problems)
    find_candidates(workflow, catalog, markings)
    find_outputs(workflow, catalog, markings)


def test_stale_or_odd_links_do_not_stop_reading_the_markings() -> None:
    # The converter reads links leniently (saved files keep stale ones); so does the primitive's lookup.
    ui = fixture_json(WITH_OUTPUTS)
    ui["links"] += [[[5], 4, 0, 1, 0, "INT"], {"id": {"x": 1}, "target_id": 1}, "junk"]
    next(n for n in ui["nodes"] if n["id"] == 4)["outputs"][0]["links"] = [5, [5], None]
    markings = read_ui_markings(ui)
    assert [(i.node_id, i.widget) for i in markings.inputs] == [("1", "height"), ("1", "color"), ("1", "width")]
    next(n for n in ui["nodes"] if n["id"] == 4)["outputs"][0]["links"] = 7
    assert read_ui_markings(ui).inputs[1] == AppModeInput("4", "value")  # feeds nothing readable: kept as named
