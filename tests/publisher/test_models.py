"""Which models/ folder a loader's file belongs in (publisher.models), with the real engine as the judge: a file put
in a folder must show up among the choices of exactly the inputs we say list that folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from publisher import NodeCatalog, find_model_refs, load_workflow
from publisher.models import FOLDER_BY_INPUT, FOLDER_BY_LOADER_INPUT, model_folder
from runtimes.engine.manager import EngineSettings

FOLDERS = sorted({*FOLDER_BY_INPUT.values(), *FOLDER_BY_LOADER_INPUT.values()})


def probe(folder: str) -> str:
    return f"zz-probe-{folder}.safetensors"


@pytest.fixture
def engine_with_probes(engine_settings: EngineSettings, engine_url: str) -> Iterator[dict[str, Any]]:
    """The engine's /object_info with one probe file in each folder (the engine re-lists a folder that changed)."""
    models = engine_settings.base_dir / "models"
    made: list[Path] = []
    try:
        for folder in FOLDERS:
            (models / folder).mkdir(parents=True, exist_ok=True)
            made.append(models / folder / probe(folder))
            made[-1].write_bytes(b"")
        yield httpx.get(f"{engine_url}/object_info", timeout=30, trust_env=False).json()
    finally:
        for path in made:
            path.unlink(missing_ok=True)


def test_each_loader_input_lists_the_folder_we_say(engine_with_probes: dict[str, Any]) -> None:
    catalog = NodeCatalog.from_object_info(engine_with_probes)
    checked, wrong = 0, []
    for class_type in catalog:
        for spec in catalog[class_type].inputs:
            listed = {folder for folder in FOLDERS if probe(folder) in spec.choices}
            if not listed:
                continue
            checked += 1
            if model_folder(class_type, spec.name) not in listed:
                wrong.append(f"{class_type}.{spec.name}: we say {model_folder(class_type, spec.name)}, "
                             f"the engine lists {sorted(listed)}")
    assert wrong == []
    assert checked >= 30  # the engine's loaders (28 classes, some with several file inputs)


def test_every_folder_we_name_is_one_the_engine_lists(engine_with_probes: dict[str, Any]) -> None:
    catalog = NodeCatalog.from_object_info(engine_with_probes)
    for (class_type, name), folder in FOLDER_BY_LOADER_INPUT.items():
        spec = catalog[class_type].input(name)
        assert spec is not None and probe(folder) in spec.choices, (class_type, name)


@pytest.mark.parametrize(("class_type", "name", "folder"), [
    ("CLIPVisionLoader", "clip_name", "clip_vision"),  # the same input name as CLIPLoader's text encoders
    ("CLIPLoader", "clip_name", "text_encoders"),
    ("LatentUpscaleModelLoader", "model_name", "latent_upscale_models"),
    ("UpscaleModelLoader", "model_name", "upscale_models"),
])
def test_a_workflows_model_is_put_in_its_loaders_folder(catalog: NodeCatalog, class_type: str, name: str,
                                                        folder: str) -> None:
    inputs = {name: "some-model.safetensors"}
    workflow = load_workflow({"1": {"class_type": class_type, "inputs": inputs}})
    (ref,) = find_model_refs(workflow, catalog)
    assert (ref.folder, ref.filename, ref.available) == (folder, "some-model.safetensors", False)
