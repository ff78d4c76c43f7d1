"""The two halves of the RunPod target together: the app's runner (RunPodRuns) sends runs to the loopback RunPod,
whose jobs run the real worker handler (make_handler over the shared EngineWorker) on the real bundled engine,
through the runpod SDK's own result rules. Here the handler's output contract and the runner's reading of it meet:
pixels and applied values come back as the local pool reports them, and a refused input keeps its error record."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from runtimes.contract import FINAL_STATUSES, RunRequest, RunUpdate
from runtimes.engine.install import EngineInstall
from runtimes.runpod.container.handler import make_handler
from runtimes.runpod.host.runner import RunPodRuns, RunPodTarget
from runtimes.serverless.worker import EngineWorker, WorkerPaths
from tests.runtimes.modal_support import demo_spec
from tests.support.run_requests import image_of, inverted, new_run_id
from tests.support.runpod_cloud import KEY, RunPodCloud


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, engine_install: EngineInstall) -> Iterator[EngineWorker]:
    folder = tmp_path_factory.mktemp("runpod-worker")
    spec_file = folder / "app_spec.json"  # what the image bakes in
    spec_file.write_text(json.dumps(demo_spec().to_dict()))
    engine_worker = EngineWorker(WorkerPaths(comfyui_dir=engine_install.comfyui_dir, python=engine_install.python,
                                             base_dir=folder / "base", spec_file=spec_file))
    engine_worker.start()
    try:
        yield engine_worker
    finally:
        engine_worker.stop()


@pytest.fixture(scope="module")
def cloud(worker: EngineWorker) -> Iterator[RunPodCloud]:
    with RunPodCloud(make_handler(worker)) as served:
        yield served


async def _run(cloud: RunPodCloud, request: RunRequest) -> list[RunUpdate]:
    updates: list[RunUpdate] = []
    ended = asyncio.Event()

    async def on_update(update: RunUpdate) -> None:
        updates.append(update)
        if update.kind in FINAL_STATUSES:
            ended.set()

    runs = RunPodRuns(on_update=on_update, poll_s=0.05)
    try:
        runs.runner(RunPodTarget("runpod:e2e", cloud.job_url(cloud.add_endpoint()), KEY)).submit(request)
        await asyncio.wait_for(ended.wait(), 60)
    finally:
        await runs.aclose()
    return updates


def _request(worker: EngineWorker, values: dict[str, object]) -> RunRequest:
    spec = worker.spec
    return RunRequest(run_id=new_run_id(), workflow=spec.workflow, bindings=spec.inputs, values=values,
                      output_nodes=spec.output_nodes)


async def test_a_run_through_the_real_handler_comes_back_as_the_local_pool_reports_it(
        cloud: RunPodCloud, worker: EngineWorker) -> None:
    updates = await _run(cloud, _request(worker, {"color": 0x102030}))
    assert [u.kind for u in updates] == ["started", "succeeded"], updates[-1].error
    outcome = updates[-1].outcome
    assert outcome is not None and outcome.applied == {"color": 0x102030} and outcome.exec_ms is not None
    (output,) = outcome.outputs
    assert (output.kind, output.mime, output.node_id) == ("image", "image/png", worker.spec.output_nodes[0])
    assert image_of(output.data).getpixel((0, 0)) == inverted(0x102030)
    body = cloud.bodies("POST", "/run")[-1]
    assert body["input"]["inputs"] == {"color": 0x102030} and body["input"]["run_id"] == updates[-1].run_id


async def test_an_input_the_handler_refuses_fails_the_run_with_the_handler_s_own_record(
        cloud: RunPodCloud, worker: EngineWorker) -> None:
    updates = await _run(cloud, _request(worker, {"color": -5}))
    final = updates[-1]
    assert final.kind == "failed" and final.error is not None
    assert final.error["type"] == "input_error" and "color" in final.error["message"], final.error
