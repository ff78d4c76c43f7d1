"""UI-format workflows (what the ComfyUI editor saves) converted with the real engine's schemas."""

from __future__ import annotations

import copy
import re
from typing import Any

import httpx
import pytest

from publisher import (
    NodeCatalog,
    WorkflowFormatError,
    convert_ui_workflow,
    detect_format,
    load_any_workflow,
    load_workflow,
    validate_graph,
)
from publisher.node_packs import MissingNodeTypesError
from tests.support.templates import template, ui_templates

from .helpers import FIXTURES, WORKFLOWS, fixture_json, shipped_workflow


@pytest.mark.parametrize(("ui_file", "api_file"), [
    ("ui_demo_invert.json", "demo_invert.json"),
    ("ui_txt2img_sd15.json", "txt2img_sd15.json"),
])
def test_a_ui_workflow_converts_to_its_api_export(catalog: NodeCatalog, ui_file: str, api_file: str) -> None:
    # Reroute, PrimitiveNode, a bypassed and a muted node, notes: the result is what Export (API) writes.
    ui = fixture_json(ui_file)
    assert detect_format(ui) == "ui"

    assert convert_ui_workflow(ui, catalog) == shipped_workflow(api_file).nodes


def _demo() -> dict[str, Any]:
    return fixture_json("ui_demo_invert.json")


def _node(ui: dict[str, Any], node_id: int) -> dict[str, Any]:
    node: dict[str, Any] = next(n for n in ui["nodes"] if n["id"] == node_id)
    return node


def test_load_any_workflow_reads_both_formats(catalog: NodeCatalog) -> None:
    from_ui = load_any_workflow(FIXTURES / "ui_demo_invert.json", catalog)
    from_api = load_any_workflow(WORKFLOWS / "demo_invert.json", catalog)

    assert from_ui.nodes == from_api.nodes
    assert from_ui.title("1") == "$Blank image"


def test_without_the_primitive_the_widget_value_is_used(catalog: NodeCatalog) -> None:
    ui = _demo()
    ui["nodes"] = [n for n in ui["nodes"] if n["type"] != "PrimitiveNode"]
    _node(ui, 1)["inputs"] = []
    _node(ui, 1)["widgets_values"][3] = 255

    assert convert_ui_workflow(ui, catalog)["1"]["inputs"] == {"width": 64, "height": 64, "batch_size": 1,
                                                                "color": 255}


def test_widget_values_saved_as_an_object_map_by_name(catalog: NodeCatalog) -> None:
    ui = _demo()
    _node(ui, 1)["widgets_values"] = {"height": 32, "width": 16, "batch_size": 2, "color": 7, "preview": None}

    inputs = convert_ui_workflow(ui, catalog)["1"]["inputs"]
    assert (inputs["width"], inputs["height"], inputs["batch_size"]) == (16, 32, 2)
    assert inputs["color"] == 16744448  # the primitive still wins


def test_a_node_saved_before_an_input_was_added_gets_its_default(catalog: NodeCatalog) -> None:
    ui = _demo()
    _node(ui, 1)["widgets_values"] = [64, 64]

    inputs = convert_ui_workflow(ui, catalog)["1"]["inputs"]
    assert inputs["batch_size"] == catalog["EmptyImage"].input("batch_size").default  # type: ignore[union-attr]


def test_muting_the_source_of_a_link_drops_that_input(catalog: NodeCatalog) -> None:
    # As the editor does: the engine then reports the missing input, naming it.
    ui = _demo()
    _node(ui, 2)["mode"] = 2

    prompt = convert_ui_workflow(ui, catalog)
    assert "2" not in prompt
    assert prompt["3"]["inputs"] == {"filename_prefix": "demo"}


def test_an_unknown_node_that_is_wired_in_is_named(catalog: NodeCatalog) -> None:
    ui = _demo()
    _node(ui, 2)["type"] = "FancyInvert"

    with pytest.raises(WorkflowFormatError) as error:
        convert_ui_workflow(ui, catalog)
    assert "node 2 (FancyInvert) is not installed on this engine: install it, or in ComfyUI use " \
           "Workflow > Export (API)" in str(error.value)


def test_unknown_nodes_wired_to_nothing_are_left_out_like_notes(catalog: NodeCatalog) -> None:
    ui = _demo()
    ui["nodes"].append({"id": 20, "type": "Label (rgthree)", "mode": 0, "inputs": [], "outputs": [],
                        "widgets_values": [], "properties": {}})
    ui["nodes"].append({"id": 21, "type": "FancyInvert", "mode": 2, "inputs": [], "outputs": []})

    assert set(convert_ui_workflow(ui, catalog)) == {"1", "2", "3"}


def test_a_bypassed_unknown_node_still_passes_its_input_through(catalog: NodeCatalog) -> None:
    ui = _demo()
    _node(ui, 5)["type"] = "FancyBlur"

    assert convert_ui_workflow(ui, catalog)["2"]["inputs"] == {"image": ["1", 0]}


@pytest.mark.parametrize("name", ["ui_subgraphs_nested", "ui_subgraphs_nested_defined_late", "ui_subgraph_bypassed"])
def test_subgraphs_convert_to_what_the_frontend_queues(catalog: NodeCatalog, name: str) -> None:
    # A subgraph nested in another (ids a:b:c), a promoted widget (by position, and by proxyWidgets), a bypassed
    # and a muted node inside. <name>.frontend.json is what the real editor queued for it (written by
    # tests/browser/test_frontend_oracle.py). In the "defined late" file the nested subgraph's definition comes
    # after the one that uses it: the editor then keeps the inner widget's value, not the instance's. A bypassed
    # instance passes its input through, and its inside is still queued (the editor does not pass modes in).
    assert convert_ui_workflow(fixture_json(f"{name}.json"), catalog) == fixture_json(f"{name}.frontend.json")


def test_a_subgraph_inside_a_subgraph_gets_a_path_of_ids(catalog: NodeCatalog) -> None:
    prompt = convert_ui_workflow(fixture_json("ui_subgraphs_nested.json"), catalog)

    assert prompt["10:3:5"]["inputs"] == {"image": ["10:1", 0], "scale_by": 2.0, "upscale_method": "nearest-exact"}
    assert prompt["2"]["inputs"]["images"] == ["10:3:5", 0]  # the outer instance's output, from two levels in
    assert "10:2" not in prompt and "10:4" not in prompt  # bypassed (passed through) and muted
    assert prompt["10:6"]["inputs"] == {}  # fed by the muted node: the link is dropped, as the editor does


def test_the_converted_subgraphs_run_on_the_engine(catalog: NodeCatalog, engine_url: str) -> None:
    prompt = convert_ui_workflow(fixture_json("ui_subgraphs_nested.json"), catalog)
    del prompt["10:6"]  # its only input comes from a muted node

    response = httpx.post(f"{engine_url}/prompt", json={"prompt": prompt}, timeout=60, trust_env=False)
    assert response.status_code == 200 and response.json()["node_errors"] == {}, response.text[:2000]


@pytest.mark.parametrize("name", ["ui_group_node", "ui_group_node_old_naming"])
def test_legacy_group_nodes_convert_to_what_the_frontend_queues(catalog: NodeCatalog, name: str) -> None:
    # Made in the real editor (Convert to Group Node of two ImageBlur and an ImageInvert: the same widget names
    # twice, an inner output used inside and outside), then the group node's widget values changed. The older
    # naming `workflow/Name` (was: "not installed") is read like `workflow>Name`. Inner ids are group:index.
    prompt = convert_ui_workflow(fixture_json(f"{name}.json"), catalog)

    assert prompt == fixture_json(f"{name}.frontend.json")
    assert prompt["8:1"]["inputs"] == {"image": ["8:0", 0], "blur_radius": 9, "sigma": 0.25}  # the group's values


def test_a_group_node_seed_takes_its_control_value_too(catalog: NodeCatalog) -> None:
    # The group node's seed widget is followed by its "control after generate" value, as on the node itself.
    prompt = convert_ui_workflow(fixture_json("ui_group_node_with_seed.json"), catalog)

    assert prompt == fixture_json("ui_group_node_with_seed.frontend.json")
    assert prompt["6:0"]["inputs"] == {"noise_seed": 77}
    assert prompt["6:1"]["inputs"] == {"image": ["1", 0], "blur_radius": 6, "sigma": 0.75}


@pytest.mark.parametrize("type_name", ["workflow>Blur twice", "workflow/Blur twice"])
def test_a_group_node_that_cannot_be_expanded_is_named_with_why(catalog: NodeCatalog, type_name: str) -> None:
    ui = fixture_json("ui_group_node.json")
    _node(ui, 8)["type"] = type_name
    ui["extra"]["groupNodes"]["Blur twice"]["nodes"][2]["type"] = "PrimitiveNode"

    with pytest.raises(WorkflowFormatError) as error:
        convert_ui_workflow(ui, catalog)
    assert f"node 8 ({type_name}) is a group node (the legacy group node 'Blur twice'), which cannot be converted: " \
           "it holds a PrimitiveNode" in str(error.value)
    assert "Convert to nodes" in str(error.value)

    del ui["extra"]["groupNodes"]
    with pytest.raises(WorkflowFormatError) as error:
        convert_ui_workflow(ui, catalog)
    assert "its definition is missing from 'extra.groupNodes'" in str(error.value)


def test_subgraphs_that_multiply_without_end_are_refused(catalog: NodeCatalog) -> None:
    # 30 subgraphs, each holding two instances of the next: 2**30 nodes once expanded, from a small file.
    ui = _demo()
    ids = [f"8d5b1c1e-0b8a-4b5e-9f0e-2f0a9c3b{n:04x}" for n in range(30)]
    definitions = [{"id": sub_id, "name": f"Level {n}", "links": [],
                    "nodes": [{"id": k, "type": ids[n + 1], "mode": 0} for k in (1, 2)] if n + 1 < len(ids) else []}
                   for n, sub_id in enumerate(ids)]
    ui["definitions"] = {"subgraphs": definitions}
    _node(ui, 2)["type"] = ids[0]

    with pytest.raises(WorkflowFormatError) as error:
        convert_ui_workflow(ui, catalog)
    assert "more than 20000 nodes once its subgraphs are expanded" in str(error.value)


def test_widget_values_that_do_not_line_up_are_refused(catalog: NodeCatalog) -> None:
    ui = copy.deepcopy(fixture_json("ui_txt2img_sd15.json"))
    _node(ui, 3)["widgets_values"].remove("randomize")  # as if saved by an editor without the control value

    with pytest.raises(WorkflowFormatError) as error:
        convert_ui_workflow(ui, catalog)
    assert "node 3 (KSampler): widget value 'euler' does not fit input 'cfg' (FLOAT)" in str(error.value)


def test_a_recorder_widget_queues_what_the_editor_queues_before_any_recording(catalog: NodeCatalog) -> None:
    # RecordAudio's input is drawn by the editor's own recorder widget (type AUDIO_RECORD): it takes a place in
    # widgets_values and queues "" until something is recorded, whatever was saved (checked in the browser tally,
    # tests/browser/test_frontend_oracle.py, on api_stability_ai_audio_to_audio.json).
    ui = {"version": 0.4, "links": [[1, 1, 0, 2, 0, "AUDIO"]], "nodes": [
        {"id": 1, "type": "RecordAudio", "mode": 0, "inputs": [],
         "outputs": [{"name": "AUDIO", "type": "AUDIO", "links": [1]}], "widgets_values": ["old-recording.wav"]},
        {"id": 2, "type": "SaveAudio", "mode": 0, "inputs": [{"name": "audio", "type": "AUDIO", "link": 1}],
         "outputs": [], "widgets_values": ["audio/ComfyUI"]}]}

    prompt = convert_ui_workflow(ui, catalog)
    assert prompt["1"]["inputs"] == {"audio": ""}
    assert prompt["2"]["inputs"]["filename_prefix"] == "audio/ComfyUI"


def test_a_link_to_a_missing_node_is_named(catalog: NodeCatalog) -> None:
    ui = _demo()
    ui["links"] = [link for link in ui["links"] if link[0] != 4]

    with pytest.raises(WorkflowFormatError) as error:
        convert_ui_workflow(ui, catalog)
    assert "node 3 (SaveImage): input 'images' uses link 4, which is not in 'links'" in str(error.value)


def test_the_engines_own_templates_convert_to_valid_graphs(catalog: NodeCatalog) -> None:
    templates = ui_templates()
    if not templates:
        pytest.skip("this engine ships no workflow templates")
    converted, subgraphed, refused = 0, 0, []
    for path, ui in templates:
        try:
            prompt = convert_ui_workflow(ui, catalog)
        except WorkflowFormatError as exc:  # API nodes (disabled on the test engine), packs the engine lacks
            assert "is not installed on this engine" in str(exc), (path.name, str(exc)[:2000])
            refused.append(path.name)
            continue
        assert validate_graph(load_workflow(prompt), catalog) == [], path.name
        converted += 1
        subgraphed += any(":" in node_id for node_id in prompt)
    print(f"templates: {converted} converted ({subgraphed} with subgraphs), {len(refused)} refused: {refused}")
    assert converted >= 50, (converted, refused)
    assert subgraphed >= 15, subgraphed  # the 15 templates that use subgraphs (comfyui-workflow-templates 0.7.25)

    sampler = convert_ui_workflow(template("sdxl_refiner_prompt_example.json"), catalog)["10"]
    assert sampler["class_type"] == "KSamplerAdvanced"
    assert {k: sampler["inputs"][k] for k in ("add_noise", "noise_seed", "steps", "end_at_step")} == {
        "add_noise": "enable", "noise_seed": 6767725640732, "steps": 25, "end_at_step": 20}


_FILE_SUFFIX = re.compile(r"\.[A-Za-z0-9]{2,12}$")


def _missing_file(error: dict[str, Any]) -> bool:
    """An engine validation error that only says a file is not on this engine: a model (a value not in a
    loader's list of files) or an input image, audio or video of the template."""
    received = error.get("extra_info", {}).get("received_value")
    if error["type"] == "value_not_in_list":
        return isinstance(received, str) and bool(_FILE_SUFFIX.search(received))
    return error["type"] == "custom_validation_failed" and re.search(
        r"Invalid (image|audio|video) file", str(error.get("details"))) is not None


_CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})


def _saved_by_another_version(node: dict[str, Any], catalog: NodeCatalog) -> str | None:
    """The input of a converted node that got a "control after generate" value, if one did. The editor saves that
    value after a seed widget only: landing on another input, it shows the node was saved by a version whose
    widgets were otherwise. The editor maps such values by position as the converter does (the browser tally
    checks that it queues the same), and the engine refuses them."""
    schema = catalog.get(node["class_type"])
    for name, value in node["inputs"].items():
        spec = schema.input(name) if schema is not None else None
        if isinstance(value, str) and value in _CONTROL_VALUES and spec is not None and value not in spec.choices:
            return name
    return None


def test_the_engines_own_templates_pass_the_engines_own_validation(api_nodes_object_info: dict[str, Any],
                                                                   api_nodes_engine_url: str) -> None:
    # The engine's /prompt is the judge, on an engine with its API nodes on (they validate without calling out;
    # a prompt that gets queued runs against a closed API base). Models and input files it does not have, and node
    # types it lacks (refused before, by the converter), are reported apart; any other error fails the test.
    catalog = NodeCatalog.from_object_info(api_nodes_object_info)
    templates = ui_templates()
    if not templates:
        pytest.skip("this engine ships no workflow templates")
    judged, other_errors, missing_files, lacking, refused, other_versions = 0, [], set(), {}, [], []
    for path, ui in templates:
        try:
            prompt = convert_ui_workflow(ui, catalog)
        except MissingNodeTypesError as exc:
            lacking[path.name] = sorted(m.class_type for m in exc.missing)
            continue
        except WorkflowFormatError as exc:  # checked against the editor's own prompt in the browser tally
            refused.append(f"{path.name}: {str(exc)[:200]}")
            continue
        response = httpx.post(f"{api_nodes_engine_url}/prompt", json={"prompt": prompt}, timeout=60, trust_env=False)
        body = response.json()
        if response.status_code == 200:  # some output had all it needs: it was queued; take it off again
            httpx.post(f"{api_nodes_engine_url}/queue", json={"delete": [body["prompt_id"]]}, timeout=30,
                       trust_env=False)
            httpx.post(f"{api_nodes_engine_url}/interrupt", timeout=30, trust_env=False)
        elif not body.get("node_errors"):
            other_errors.append(f"{path.name}: {str(body.get('error'))[:300]}")
        for node_id, found in (body.get("node_errors") or {}).items():
            if (landed := _saved_by_another_version(prompt[node_id], catalog)) is not None:
                other_versions.append(f"{path.name}: node {node_id} ({found['class_type']}) was saved by another "
                                      f"version of it (a control value landed on '{landed}'): "
                                      + ", ".join(f"{e['type']} {str(e.get('details'))[:80]}" for e in found["errors"]))
                continue
            for error in found["errors"]:
                if _missing_file(error):
                    missing_files.add(str(error.get("extra_info", {}).get("received_value")))
                else:
                    other_errors.append(f"{path.name}: node {node_id} ({found['class_type']}): {error['type']} "
                                        f"{str(error.get('details'))[:200]}")
        judged += 1
    print(f"\n{judged} templates judged by the engine; {len(missing_files)} model or input files it lacks; node "
          f"types it lacks: {lacking}; refused for values that do not fit: {refused}; nodes saved by another version: "
          f"{other_versions}")
    assert judged >= 180  # all 188 but those refused, API-node templates included
    assert other_errors == []
