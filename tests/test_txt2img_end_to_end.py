"""The standard SD1.5 txt2img graph, end to end on the real engine (CPU, random-weight checkpoint):
load -> validate -> detect inputs -> apply a user's values -> isolate outputs -> run -> image bytes."""

from __future__ import annotations

import io
import uuid
from typing import Any

from PIL import Image

from publisher import (
    NodeCatalog,
    apply_values,
    bindings_from_candidates,
    check_graph,
    find_candidates,
    isolate_outputs,
    load_workflow,
)
from runtimes.comfy.client import ComfyClient
from tests.support.paths import WORKFLOWS


async def _generate(client: ComfyClient, catalog: NodeCatalog, values: dict[str, Any]) -> tuple[Image.Image, dict]:
    workflow = load_workflow(WORKFLOWS / "txt2img_sd15.json")
    bindings = bindings_from_candidates([c for c in find_candidates(workflow, catalog) if c.suggested])
    applied = apply_values(workflow, bindings, values)
    run_id = uuid.uuid4().hex
    result = await client.run(isolate_outputs(applied.prompt, catalog, run_id), prompt_id=run_id)
    (output,) = result.outputs
    assert output.subfolder == f"runs/{run_id}"
    return Image.open(io.BytesIO(await client.fetch_output(output))).convert("RGB"), applied.values


async def test_txt2img_generates_and_a_seed_reproduces_it(
    client: ComfyClient, object_info: dict, sd15_checkpoint: str
) -> None:
    catalog = NodeCatalog.from_object_info(object_info)
    workflow = load_workflow(WORKFLOWS / "txt2img_sd15.json")
    suggested = {c.key for c in find_candidates(workflow, catalog) if c.suggested}
    assert {"6.text", "7.text", "3.seed", "3.steps", "4.ckpt_name", "5.width"} <= suggested

    values = {"prompt": "a lighthouse at dusk", "ksampler_steps": 2, "empty_latent_image_width": 64,
              "empty_latent_image_height": 64, "load_checkpoint": sd15_checkpoint}
    first, applied = await _generate(client, catalog, values)
    check_graph(workflow, catalog)

    assert first.size == (64, 64)
    seed = applied["ksampler_seed"]
    assert isinstance(seed, int) and seed != 156680208700286  # randomized, and the seed used is reported
    same, _ = await _generate(client, catalog, {**values, "ksampler_seed": seed})
    other, _ = await _generate(client, catalog, {**values, "ksampler_seed": seed + 1})
    assert same.tobytes() == first.tobytes()
    assert other.tobytes() != first.tobytes()
