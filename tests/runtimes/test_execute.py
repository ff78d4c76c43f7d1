"""execute_run against the real engine: values in, uploads in, the published outputs' bytes out."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from publisher import InputBinding, InputValuesError, NodeCatalog, load_any_workflow
from runtimes.comfy.client import ComfyClient
from runtimes.comfy.errors import PromptValidationError
from runtimes.contract import RunRequest
from runtimes.engine.manager import EngineSettings
from runtimes.execute import error_record, execute_run
from tests.support.paths import REPO
from tests.support.prompts import demo_invert, load_invert, node_of
from tests.support.run_requests import demo_request, image_of, inverted, new_run_id, png, txt2img_request


@pytest.fixture(scope="module")
def catalog(object_info: dict) -> NodeCatalog:
    return NodeCatalog.from_object_info(object_info)


@pytest.fixture(scope="module")
def engine_dir(engine_settings: EngineSettings) -> Path:
    return engine_settings.data_dir / "comfyui"


async def test_demo_returns_the_inverted_png_and_the_applied_values(
    client: ComfyClient, catalog: NodeCatalog, engine_dir: Path
) -> None:
    request = demo_request(0x102030)

    outcome = await execute_run(client, catalog, request)

    assert outcome.run_id == request.run_id
    assert outcome.applied == {"color": 0x102030}  # no seed in this graph: nothing drawn
    (output,) = outcome.outputs
    assert (output.node_id, output.kind, output.mime) == ("3", "image", "image/png")
    assert image_of(output.data).getpixel((3, 3)) == inverted(0x102030)
    # The run's files live in its own folder of the engine's output directory.
    assert [p.name for p in (engine_dir / "output" / "runs" / request.run_id).rglob("*.png")] == [output.filename]
    assert outcome.exec_ms is not None and outcome.exec_ms >= 0


async def test_txt2img_reports_the_seed_it_drew(
    client: ComfyClient, catalog: NodeCatalog, sd15_checkpoint: str
) -> None:
    request = txt2img_request(sd15_checkpoint, size=64, steps=2)

    outcome = await execute_run(client, catalog, request)

    seed = outcome.applied["seed"]
    assert isinstance(seed, int) and 0 <= seed <= 2**53 - 1
    assert outcome.applied["prompt"] == "a lighthouse at dusk"
    (output,) = outcome.outputs
    assert image_of(output.data).size == (64, 64)
    # The seed reported is the one the engine ran with.
    history = await client.history(request.run_id)
    assert history is not None and history["prompt"][2]["3"]["inputs"]["seed"] == seed


async def test_dynamic_prompts_are_picked_per_run_and_recorded(
    client: ComfyClient, catalog: NodeCatalog, sd15_checkpoint: str
) -> None:
    # The caller's text of a published dynamicPrompts input, and a workflow text a conversion left for each run.
    request = txt2img_request(sd15_checkpoint, values={"prompt": "a {red|blue} lighthouse // at dusk"})
    negative = request.workflow[node_of(request.workflow, "KSampler")]["inputs"]["negative"][0]
    request.workflow[negative].update(_meta={"per_run": {"text": ["dynamic_prompts"]}})
    request.workflow[negative]["inputs"]["text"] = "{calm|stormy} sea"

    outcome = await execute_run(client, catalog, request)

    assert outcome.applied["prompt"] in {"a red lighthouse ", "a blue lighthouse "}
    assert outcome.applied[f"{negative}.text"] in {"calm sea", "stormy sea"}
    history = await client.history(request.run_id)
    assert history is not None
    queued = history["prompt"][2]
    positive = request.bindings[1].node
    assert (queued[positive]["inputs"]["text"], queued[negative]["inputs"]["text"]) == (
        outcome.applied["prompt"], outcome.applied[f"{negative}.text"])  # what was recorded is what ran


async def test_a_converted_ui_workflow_runs_as_the_editor_would_queue_it(
    client: ComfyClient, catalog: NodeCatalog, sd15_checkpoint: str
) -> None:
    # The editor's workflow.json, edited as a user would: checkpoint, a tiny latent, 2 steps on the PrimitiveNode.
    ui = json.loads((REPO / "tests/publisher/fixtures/ui_txt2img_sd15.json").read_text())
    widgets = {node["id"]: node["widgets_values"] for node in ui["nodes"] if "widgets_values" in node}
    widgets[4][0], widgets[5][:2], widgets[10][0] = sd15_checkpoint, [64, 64], 2
    workflow = load_any_workflow(ui, catalog)
    request = RunRequest(run_id=new_run_id(), workflow=workflow.to_prompt(), bindings=(), values={})

    outcome = await execute_run(client, catalog, request)

    (output,) = outcome.outputs
    assert output.node_id == "9" and image_of(output.data).size == (64, 64)
    history = await client.history(request.run_id)
    assert history is not None
    sampler = history["prompt"][2]["3"]["inputs"]
    assert (sampler["seed"], sampler["steps"], sampler["latent_image"]) == (156680208700286, 2, ["5", 0])
    assert set(history["prompt"][2]) == {"3", "4", "5", "6", "7", "8", "9"}  # bypassed, muted, notes: gone


async def test_an_uploaded_image_goes_through_load_image(
    client: ComfyClient, catalog: NodeCatalog, engine_dir: Path
) -> None:
    run_id = new_run_id()
    photo = InputBinding(node="1", input="image", type="image", name="photo")
    request = RunRequest(run_id=run_id, workflow=load_invert("placeholder.png"), bindings=(photo,), values={},
                         uploads={"photo": ("../../my photo.png", png((200, 100, 0)))})

    outcome = await execute_run(client, catalog, request)

    # Stored under the run's own input folder, its name made safe (no path, no spaces).
    assert outcome.applied == {"photo": f"runs/{run_id}/my_photo.png"}
    assert (engine_dir / "input" / "runs" / run_id / "my_photo.png").read_bytes() == png((200, 100, 0))
    pixel = image_of(outcome.outputs[0].data).getpixel((0, 0))
    # The engine works in float and truncates on save: allow one step of rounding.
    assert all(abs(got - want) <= 1 for got, want in zip(pixel, (55, 155, 255), strict=True))


async def test_an_upload_given_by_path_is_read_when_the_run_starts(
    client: ComfyClient, catalog: NodeCatalog, engine_dir: Path, tmp_path: Path
) -> None:
    # How the app queues runs: the stored file's path, not its bytes.
    stored = tmp_path / "photo-mine.png"
    stored.write_bytes(png((0, 0, 0)))
    run_id = new_run_id()
    photo = InputBinding(node="1", input="image", type="image", name="photo")
    request = RunRequest(run_id=run_id, workflow=load_invert("placeholder.png"), bindings=(photo,), values={},
                         uploads={"photo": (stored.name, stored)})
    stored.write_bytes(png((10, 20, 30)))  # what the file holds when the run starts is what the engine gets

    outcome = await execute_run(client, catalog, request)

    assert outcome.applied == {"photo": f"runs/{run_id}/photo-mine.png"}
    assert (engine_dir / "input" / "runs" / run_id / "photo-mine.png").read_bytes() == png((10, 20, 30))
    pixel = image_of(outcome.outputs[0].data).getpixel((0, 0))
    assert all(abs(got - want) <= 1 for got, want in zip(pixel, (245, 235, 225), strict=True))


async def test_only_the_published_output_nodes_come_back(client: ComfyClient, catalog: NodeCatalog) -> None:
    workflow = demo_invert(0, size=16)
    workflow["4"] = {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}

    published = await execute_run(client, catalog, RunRequest(
        run_id=new_run_id(), workflow=workflow, bindings=(), values={}, output_nodes=("3",)))
    everything = await execute_run(client, catalog, RunRequest(
        run_id=new_run_id(), workflow=workflow, bindings=(), values={}))

    assert [o.node_id for o in published.outputs] == ["3"]
    assert [o.node_id for o in everything.outputs] == ["3", "4"]
    assert all(o.kind == "image" and image_of(o.data).getpixel((0, 0)) == (255, 255, 255)
               for o in everything.outputs)


async def test_an_engine_refusal_names_node_and_input(client: ComfyClient, catalog: NodeCatalog) -> None:
    width = InputBinding(node="1", input="width", type="int", name="width")  # no range: the engine checks it
    request = RunRequest(run_id=new_run_id(), workflow=demo_invert(0), bindings=(width,), values={"width": 0})

    with pytest.raises(PromptValidationError) as caught:
        await execute_run(client, catalog, request)

    record = error_record(caught.value, request)
    assert record["type"] == "validation_error"
    assert (record["node_id"], record["node_type"], record["input"]) == ("1", "EmptyImage", "width")
    assert record["details"]["problems"][0]["type"] == "value_smaller_than_min"


async def test_bad_values_and_uploads_never_reach_the_engine(
    client: ComfyClient, catalog: NodeCatalog, engine_dir: Path
) -> None:
    wrong_value = demo_request(0, values={"colour": 5})
    wrong_upload = demo_request(0, uploads={"picture": ("a.png", png((1, 2, 3)))})

    for request in (wrong_value, wrong_upload):
        with pytest.raises(InputValuesError) as caught:
            await execute_run(client, catalog, request)
        record = error_record(caught.value, request)
        assert record["type"] == "input_error" and record["input"] in ("colour", "picture")
        assert await client.history(request.run_id) is None
    assert not (engine_dir / "input" / "runs" / wrong_upload.run_id).exists()


async def test_a_file_name_outside_the_engines_folders_never_reaches_the_engine(
    client: ComfyClient, catalog: NodeCatalog
) -> None:
    # A version published before publishing checked paths still cannot make the engine read outside its input folder.
    request = RunRequest(run_id=new_run_id(), workflow=load_invert("../../outside.png"), bindings=(),
                         values={})
    with pytest.raises(ValueError, match=r"node 1 \(LoadImage\), input 'image'") as caught:
        await execute_run(client, catalog, request)
    assert error_record(caught.value, request)["type"] == "invalid_request"
    assert await client.history(request.run_id) is None


async def test_a_date_in_the_file_name_prefix_is_the_day_of_the_run(client: ComfyClient, catalog: NodeCatalog) -> None:
    # The editor fills in %date:…% when it queues; a published workflow keeps the token and each run fills it in.
    workflow = demo_invert(0, size=16, prefix="test/day_%date:yyyy-MM-dd%")
    before = datetime.now().strftime("%Y-%m-%d")

    outcome = await execute_run(client, catalog, RunRequest(
        run_id=new_run_id(), workflow=workflow, bindings=(), values={}))

    days = {before, datetime.now().strftime("%Y-%m-%d")}  # a run across midnight may take either day
    assert any(outcome.outputs[0].filename.startswith(f"day_{day}_") for day in days), outcome.outputs[0].filename
    assert "%date:yyyy-MM-dd%" in json.dumps(workflow)  # the stored workflow keeps its token
