"""Where a UI-format file says its model files come from (publisher.model_sources): Hugging Face addresses read as
hf:// sources, checked on the engine's own templates, which declare theirs in properties.models."""

from __future__ import annotations

from typing import Any

import pytest

from publisher import NodeCatalog, WorkflowFormatError, find_model_refs
from publisher.app_mode import load_marked_workflow
from publisher.model_sources import declared_sources, hf_source_of, sources_for
from publisher.models import HF_SOURCE
from tests.support.templates import template, ui_templates

HUB = "https://huggingface.co"


@pytest.mark.parametrize(("url", "source"), [
    (f"{HUB}/Comfy-Org/flux1-schnell/resolve/main/flux1-schnell.safetensors",
     "hf://Comfy-Org/flux1-schnell/flux1-schnell.safetensors"),
    (f"{HUB}/Comfy-Org/sd15/resolve/main/v1-5.safetensors?download=true", "hf://Comfy-Org/sd15/v1-5.safetensors"),
    (f"{HUB}/o/r/blob/main/split_files/vae/ae.safetensors", "hf://o/r/split_files/vae/ae.safetensors"),
    (f"{HUB}/o/r/resolve/3f2a9c1/model.safetensors", "hf://o/r/model.safetensors@3f2a9c1"),
    (f"{HUB}/o/r/resolve/main/my%2Bmodel.safetensors", "hf://o/r/my+model.safetensors"),
    (f"{HUB}/o/r/resolve/main/my%20model.safetensors", None),  # no hf:// source holds a space
    ("hf://o/r/a.safetensors@v2", "hf://o/r/a.safetensors@v2"),
    ("https://civitai.com/api/download/models/12345", None),
    (f"{HUB}/o/r", None),
    ("http://huggingface.co/o/r/resolve/main/a.safetensors", None),  # not the Hub's own address
    ("", None),
    (None, None),
])
def test_a_hub_file_address_reads_as_an_hf_source(url: object, source: str | None) -> None:
    assert hf_source_of(url) == source


def test_declared_sources_come_from_every_node_subgraphs_too_and_skip_what_is_no_hub_file() -> None:
    def loader(models: Any) -> dict[str, Any]:
        return {"id": 1, "type": "VAELoader", "properties": {"models": models}}

    data = {"nodes": [loader([{"name": "ae.safetensors", "url": f"{HUB}/o/r/resolve/main/ae.safetensors",
                               "directory": "vae"},
                              {"name": "x.safetensors", "url": "https://example.com/x.safetensors"},
                              {"url": f"{HUB}/o/r/resolve/main/nameless.safetensors"}, "junk"]),
                      loader("not a list")],
            "definitions": {"subgraphs": [{"nodes": [loader([{"name": "t5.safetensors", "directory": "clip",
                                                              "url": f"{HUB}/o/t/resolve/main/t5.safetensors"}])]}]}}
    assert declared_sources(data) == {"vae/ae.safetensors": "hf://o/r/ae.safetensors",
                                      "ae.safetensors": "hf://o/r/ae.safetensors",
                                      "clip/t5.safetensors": "hf://o/t/t5.safetensors",
                                      "t5.safetensors": "hf://o/t/t5.safetensors"}


def test_the_engines_templates_give_their_model_files_hub_sources(catalog: NodeCatalog) -> None:
    used = sourced = 0
    for _, ui in ui_templates():
        try:
            workflow, markings = load_marked_workflow(ui, catalog)
        except WorkflowFormatError:  # API nodes (off on this engine), packs it lacks
            continue
        refs = find_model_refs(workflow, catalog)
        sources = sources_for(refs, markings.model_sources)
        used += len(refs)
        sourced += len(sources)
        for key, source in sources.items():
            assert HF_SOURCE.match(source), (key, source)
            assert source.split("@")[0].endswith("/" + key.split("/", 1)[1]), (key, source)  # the file it names
    print(f"{sourced} of {used} model files the templates use get a source")
    assert used >= 150 and sourced / used > 0.9, (sourced, used)


def test_image2image_gets_its_checkpoints_source(catalog: NodeCatalog) -> None:
    workflow, markings = load_marked_workflow(template("image2image.json"), catalog)
    refs = find_model_refs(workflow, catalog)
    assert sources_for(refs, markings.model_sources) == {
        "checkpoints/v1-5-pruned-emaonly-fp16.safetensors":
            "hf://Comfy-Org/stable-diffusion-v1-5-archive/v1-5-pruned-emaonly-fp16.safetensors"}
