"""The ComfyUI client against the real bundled engine: outputs, errors, cancel, previews."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import uuid

import pytest
from PIL import Image

from runtimes.comfy import events as ev
from runtimes.comfy.client import ComfyClient
from runtimes.comfy.errors import (
    EngineRequestError,
    EngineUnavailableError,
    ExecutionFailedError,
    PromptValidationError,
    RunInterruptedError,
    RunTimeoutError,
)
from runtimes.engine.manager import Engine
from runtimes.engine.process import free_port
from tests.support.prompts import demo_invert, load_invert, node_of, txt2img


def _png(color: tuple[int, int, int], size: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_model_free_workflow_returns_the_inverted_image(client: ComfyClient) -> None:
    seen: list[str] = []
    result = await client.run(demo_invert(0x102030, size=32, prefix=f"test/{uuid.uuid4().hex}/img"),
                              on_event=lambda event: seen.append(event.type))

    (output,) = result.outputs
    assert (output.type, output.kind) == ("output", "images")
    image = Image.open(io.BytesIO(await client.fetch_output(output)))
    assert image.size == (32, 32)
    assert image.convert("RGB").getpixel((5, 5)) == (0xFF - 0x10, 0xFF - 0x20, 0xFF - 0x30)
    assert seen[0] == "execution_start" and "executed" in seen and seen[-2:] == ["execution_success", "executing"]
    assert result.exec_ms is not None and result.exec_ms >= 0


async def test_uploaded_image_goes_through_load_image(client: ComfyClient) -> None:
    folder = f"test-{uuid.uuid4().hex[:8]}"
    reference = await client.upload_image(_png((200, 100, 0)), "in.png", subfolder=folder)
    assert reference == f"{folder}/in.png"

    result = await client.run(load_invert(reference, prefix=f"test/{uuid.uuid4().hex}/img"))

    image = Image.open(io.BytesIO(await client.fetch_output(result.outputs[0]))).convert("RGB")
    # The engine works in float and truncates on save: allow one step of rounding.
    assert all(abs(got - want) <= 1 for got, want in zip(image.getpixel((0, 0)), (55, 155, 255), strict=True))


async def test_every_failing_node_and_input_is_reported(client: ComfyClient) -> None:
    prompt = demo_invert(0, prefix="test/bad")
    empty = node_of(prompt, "EmptyImage")
    prompt[empty]["inputs"]["width"] = 0  # below min 1
    prompt[empty]["inputs"]["color"] = "red"  # not an int
    prompt["90"] = {"class_type": "LoadImage", "inputs": {"image": "no-such-file.png"}}
    prompt["91"] = {"class_type": "SaveImage", "inputs": {"images": ["90", 0], "filename_prefix": "test/x"}}

    with pytest.raises(PromptValidationError) as caught:
        await client.run(prompt)

    error = caught.value
    by_input = {(p.node_id, p.input_name): p for p in error.problems}
    assert by_input[(empty, "width")].type == "value_smaller_than_min"
    assert by_input[(empty, "width")].node_type == "EmptyImage"
    assert by_input[(empty, "color")].type == "invalid_input_type"
    missing = by_input[("90", "image")]
    assert (missing.node_type, missing.type) == ("LoadImage", "custom_validation_failed")
    assert "no-such-file.png" in missing.details
    assert set(error.node_errors) == {empty, "90"}  # the engine's node_errors, kept whole
    text = str(error)
    assert f"node {empty} (EmptyImage), input 'width'" in text and "node 90 (LoadImage), input 'image'" in text


async def test_unknown_node_type_is_refused_with_its_name(client: ComfyClient) -> None:
    prompt = demo_invert(0, prefix="test/bad")
    prompt["50"] = {"class_type": "NotARealNode", "inputs": {}}

    with pytest.raises(PromptValidationError) as caught:
        await client.run(prompt)

    assert caught.value.type == "invalid_prompt"
    assert "NotARealNode" in str(caught.value)


async def test_a_node_that_raises_reports_node_and_exception(client: ComfyClient) -> None:
    # A file that passes LoadImage's validation (it exists) but is not an image fails at run time.
    reference = await client.upload_image(b"this is not a png", f"broken-{uuid.uuid4().hex[:6]}.png")

    with pytest.raises(ExecutionFailedError) as caught:
        await client.run(load_invert(reference, prefix=f"test/{uuid.uuid4().hex}/img"))

    error = caught.value
    assert (error.node_id, error.node_type) == ("1", "LoadImage")
    assert error.exception_type == "PIL.UnidentifiedImageError"
    assert reference in error.message
    assert str(error).startswith("node 1 (LoadImage) failed: PIL.UnidentifiedImageError")


async def test_progress_and_previews_then_interrupt(client: ComfyClient, sd15_checkpoint: str) -> None:
    progress: list[ev.Progress] = []
    previews: list[ev.Preview] = []
    prompt_id = uuid.uuid4().hex

    async def on_event(event: ev.EngineEvent) -> None:
        if isinstance(event, ev.Progress):
            progress.append(event)
            if event.value == 2:
                await client.interrupt(prompt_id)
        elif isinstance(event, ev.Preview):
            previews.append(event)

    prompt = txt2img(sd15_checkpoint, size=256, steps=40, prefix=f"test/{prompt_id}/img")
    with pytest.raises(RunInterruptedError) as caught:
        await client.run(prompt, prompt_id=prompt_id, on_event=on_event)

    sampler = node_of(prompt, "KSampler")
    assert caught.value.node_id == sampler
    assert [p.value for p in progress][:2] == [1, 2] and progress[0].max == 40
    assert progress[-1].value < 40 and all(p.node == sampler for p in progress)
    assert previews and all(p.node == sampler and p.prompt_id == prompt_id for p in previews)
    assert Image.open(io.BytesIO(previews[0].image)).size[0] > 0
    history = await client.wait_for_history(prompt_id)
    assert history["status"]["status_str"] == "error"


async def test_queued_prompt_is_deleted_and_its_follower_is_told(client: ComfyClient, sd15_checkpoint: str) -> None:
    running_id, queued_id = uuid.uuid4().hex, uuid.uuid4().hex
    started = asyncio.Event()

    def on_running_event(event: ev.EngineEvent) -> None:
        if isinstance(event, ev.Progress):
            started.set()

    running = asyncio.create_task(client.run(
        txt2img(sd15_checkpoint, size=256, steps=30, prefix=f"test/{running_id}/img"),
        prompt_id=running_id, on_event=on_running_event))
    await asyncio.wait_for(started.wait(), 60)
    queued = asyncio.create_task(client.run(demo_invert(1, prefix=f"test/{queued_id}/img"), prompt_id=queued_id))
    await asyncio.sleep(0.3)

    assert await client.cancel(queued_id) == "deleted"
    assert await client.cancel(running_id) == "interrupted"
    with pytest.raises(RunInterruptedError, match="removed from the engine's queue"):
        await queued
    with pytest.raises(RunInterruptedError):
        await running
    assert await client.cancel(queued_id) == "not_found"
    assert await client.history(queued_id) is None


async def test_run_timeout_names_the_run(client: ComfyClient, sd15_checkpoint: str) -> None:
    prompt_id = uuid.uuid4().hex
    with pytest.raises(RunTimeoutError, match=f"run {prompt_id}: the run did not finish within 0.5 s"):
        await client.run(txt2img(sd15_checkpoint, size=256, steps=20, prefix=f"test/{prompt_id}/i"),
                         prompt_id=prompt_id, timeout=0.5)
    await client.cancel(prompt_id)  # leave the engine free for the next test


async def test_identical_resubmission_is_served_from_cache(client: ComfyClient) -> None:
    prompt = demo_invert(0x445566, prefix=f"test/{uuid.uuid4().hex}/img")
    first = await client.run(prompt)
    again = await client.run(prompt)
    # Why every run gets its own output prefix: the engine would hand back the old file.
    assert again.outputs == first.outputs
    assert set(again.cached_nodes) == set(prompt)


async def test_object_info_is_fetched_once(client: ComfyClient) -> None:
    first = await client.object_info()
    assert first["KSampler"]["input"]["required"]["seed"][0] == "INT"
    assert await client.object_info() is first
    assert await client.object_info(refresh=True) is not first


async def test_engine_that_is_not_there_gives_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with ComfyClient(url) as comfy:
        with pytest.raises(EngineUnavailableError, match=f"Cannot reach the ComfyUI engine at {url}"):
            await comfy.system_stats()
        with pytest.raises(EngineUnavailableError, match="Cannot open the websocket"):
            await comfy.run(demo_invert(0))


async def test_outputs_come_from_the_run_events_when_the_output_nodes_are_known(
    client: ComfyClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    history = client.history

    async def counted(prompt_id: str) -> dict | None:
        asked.append(prompt_id)
        return await history(prompt_id)

    monkeypatch.setattr(client, "history", counted)
    prompt = demo_invert(0x0A0B0C, prefix=f"test/{uuid.uuid4().hex}/img")
    save = node_of(prompt, "SaveImage")
    fresh = await client.run(prompt, output_nodes=[save])
    cached = await client.run(prompt, output_nodes=[save])  # every node cached: 0.3.75 still sends `executed`
    assert asked == []
    unknown = await client.run(prompt)  # nodes cached and the output nodes unknown: history is asked
    assert asked == [unknown.prompt_id]
    # The same files the history entry lists.
    assert fresh.outputs == cached.outputs == unknown.outputs and len(fresh.outputs) == 1
    assert fresh.node_outputs == (await history(fresh.prompt_id))["outputs"]


async def test_outputs_of_a_local_engine_are_read_from_its_folder(engine: Engine, engine_url: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert engine.output_dir is not None
    async with ComfyClient(engine_url, output_dir=engine.output_dir) as local:
        asked: list[str] = []
        request = local._request

        async def counted(method: str, path: str, **kwargs: object) -> object:
            asked.append(path)
            return await request(method, path, **kwargs)

        monkeypatch.setattr(local, "_request", counted)
        result = await local.run(demo_invert(0x203040, size=8, prefix=f"test/{uuid.uuid4().hex}/img"))
        (output,) = result.outputs
        data = await local.fetch_output(output)
        assert "/view" not in asked
        assert Image.open(io.BytesIO(data)).convert("RGB").getpixel((1, 1)) == (0xDF, 0xCF, 0xBF)
        # A name that would leave the folder is never read from disk: the engine is asked (and refuses it).
        escape = dataclasses.replace(output, subfolder="../../..", filename="etc/passwd")
        with pytest.raises(EngineRequestError):
            await local.fetch_output(escape)
        assert asked[-1] == "/view"


def test_messages_not_followed_are_skipped_unparsed_and_followed_ones_parsed() -> None:
    # progress_state (one per step and node) is skipped by its type alone: even broken JSON after it is not read.
    assert ev.parse_text_message('{"type": "progress_state", "data": {"prompt_id": "p", "nodes": {}}}') is None
    assert ev.parse_text_message('{"type": "progress_state", "data": {broken') is None
    event = ev.parse_text_message(json.dumps({"type": "progress",
                                              "data": {"prompt_id": "p", "node": 3, "value": 2, "max": 4}}))
    assert isinstance(event, ev.Progress) and (event.prompt_id, event.node, event.value, event.max) == ("p", "3", 2, 4)
    assert ev.parse_text_message('{"data": {}, "type": "executing"}') is not None  # another writer's key order
