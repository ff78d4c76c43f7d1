"""The model files a workflow file names when no engine converts it (publisher.model_needs), checked against what
the engine's own conversion finds in its templates, and the sha256 a file declares."""

from __future__ import annotations

from typing import Any

import pytest

from publisher import AppSpec, NodeCatalog, WorkflowFormatError, build_app_spec, find_model_refs
from publisher.app_mode import load_marked_workflow
from publisher.model_needs import declared_hashes, file_model_refs
from tests.support.prompts import shipped
from tests.support.templates import template, ui_templates


def test_without_an_engine_a_ui_file_names_the_files_the_engines_conversion_finds(
        object_info: dict[str, Any]) -> None:
    catalog = NodeCatalog.from_object_info(object_info)
    compared = 0
    for path, data in ui_templates():
        try:
            workflow, _ = load_marked_workflow(data, catalog)
        except WorkflowFormatError:
            continue  # node types of packs the engine lacks: no conversion to compare with
        converted = {(r.folder, r.filename) for r in find_model_refs(workflow, catalog)}
        if not converted:
            continue
        found = {(r.folder, r.filename) for r in file_model_refs(data)}
        assert converted <= found, f"{path.name}: {sorted(converted - found)}"
        compared += 1
    assert compared > 100


def test_an_api_file_is_placed_by_the_loader_table() -> None:
    refs = file_model_refs(shipped("txt2img_sd15.json"))
    assert [(r.folder, r.filename) for r in refs] == [("checkpoints", "v1-5-pruned-emaonly.safetensors")]


def test_a_ui_files_loaders_are_placed_by_input_and_other_nodes_by_their_declared_folder() -> None:
    data = {"nodes": [
        {"id": 1, "type": "DualCLIPLoader", "widgets_values": ["clip_l.safetensors", "t5.safetensors", "flux"]},
        {"id": 2, "type": "CLIPVisionLoader", "widgets_values": ["vision.safetensors"]},
        {"id": 3, "type": "SomePackLoader", "widgets_values": ["pack.pt", 3],
         "properties": {"models": [{"name": "pack.pt", "directory": "sams", "url": "x"}]}},
        {"id": 4, "type": "OtherPackLoader", "widgets_values": ["where.onnx"]},
        {"id": 5, "type": "VAELoader", "mode": 2, "widgets_values": ["muted.safetensors"]}], "links": []}
    assert [(r.node, r.input, r.folder, r.filename) for r in file_model_refs(data)] == [
        ("1", "clip_name1", "text_encoders", "clip_l.safetensors"),
        ("1", "clip_name2", "text_encoders", "t5.safetensors"),
        ("2", "clip_name", "clip_vision", "vision.safetensors"),
        ("3", "?", "sams", "pack.pt"),
        ("4", "?", "unknown", "where.onnx")]


@pytest.mark.parametrize("hash_type", ["SHA256", "sha256", None])
def test_declared_hashes_are_read_by_folder_and_name(hash_type: str | None) -> None:
    entry = {"name": "a.safetensors", "directory": "vae", "hash": "AB" * 32,
             **({"hash_type": hash_type} if hash_type else {})}
    data = {"nodes": [{"id": 1, "type": "VAELoader", "properties": {"models": [entry, {"name": "b", "hash": 3},
                                                                              "junk"]}}]}
    assert declared_hashes(data) == {"vae/a.safetensors": "ab" * 32, "a.safetensors": "ab" * 32}


def test_a_hash_of_another_kind_is_not_taken_for_a_sha256() -> None:
    data = {"nodes": [{"id": 1, "properties": {"models": [{"name": "a", "hash": "x", "hash_type": "BLAKE3"}]}}]}
    assert declared_hashes(data) == {}


def test_a_published_spec_keeps_the_hashes_the_file_declares_unless_the_publisher_gave_another_source(
        catalog: NodeCatalog) -> None:
    workflow, markings = load_marked_workflow(template("wan2.1_flf2v_720_f16.json"), catalog)
    vae = "wan_2.1_vae.safetensors"
    declared = markings.model_hashes[vae]
    spec = build_app_spec(workflow, catalog, [], declared_sources=markings.model_sources,
                          declared_hashes=markings.model_hashes)
    by_name = {ref.filename: ref for ref in spec.models}
    assert by_name[vae].sha256 == declared and len(declared) == 64
    assert AppSpec.from_dict(spec.to_dict()).models == spec.models  # stored and read back with it

    own = "hf://me/my-vae/wan_2.1_vae.safetensors"
    given = build_app_spec(workflow, catalog, [], model_sources={vae: own}, declared_sources=markings.model_sources,
                           declared_hashes=markings.model_hashes)
    ref = next(ref for ref in given.models if ref.filename == vae)
    assert (ref.source, ref.sha256) == (own, None)  # the declared hash is the declared file's, not this one's
    assert all(r.sha256 for r in given.models if r.filename != vae)
