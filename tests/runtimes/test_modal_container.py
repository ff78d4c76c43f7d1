"""The container side of a deployment, run here against the real bundled engine: the generated class's enter
hooks (engine started with CUDA hidden for the snapshot, then the GPU hand-over), its run method, and the
generated endpoint served with uvicorn, driven by the app's RemoteRuns. Only Modal's spawn/FunctionCall edge
is replaced (LocalJobs)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from runtimes.contract import RunRequest, RunUpdate
from runtimes.engine.install import EngineInstall
from runtimes.engine.process import free_port
from runtimes.modal.container.endpoint import create_endpoint
from runtimes.modal.container.jobs import LocalJobs
from runtimes.modal.host.generate import generate
from runtimes.modal.host.runner import RemoteRuns, RemoteTarget
from runtimes.modal.host.settings import DeploySettings
from tests.runtimes.modal_support import demo_spec, import_bundle
from tests.support.run_requests import image_of, inverted, new_run_id

KEY = "test-endpoint-key-" + "x" * 20
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def container(tmp_path_factory: pytest.TempPathFactory, engine_install: EngineInstall) -> Iterator[Any]:
    """The generated ComfyWorker class as Modal would run it: plain instance, snap=True then snap=False hooks."""
    # The bytecode of ComfyUI's model_management, as any normal engine start writes it: the snapshot patch must
    # apply all the same (it is made to the source, in memory).
    subprocess.run([str(engine_install.python), "-m", "py_compile",
                    str(engine_install.comfyui_dir / "comfy" / "model_management.py")], check=True)
    bundle_dir = tmp_path_factory.mktemp("bundle")
    module = import_bundle(generate(demo_spec(), DeploySettings(), slug="demo", version=1, title="Demo"), bundle_dir)
    overrides = {"COMFY_PUBLISHER_COMFYUI_DIR": str(engine_install.comfyui_dir),
                 "COMFY_PUBLISHER_PYTHON": str(engine_install.python),
                 "COMFY_PUBLISHER_BASE_DIR": str(tmp_path_factory.mktemp("container-base")),
                 "COMFY_PUBLISHER_SPEC_FILE": str(bundle_dir / "app_spec.json")}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in overrides.items():
            patch.setenv(name, value)
        worker = module.ComfyWorker._get_user_cls()()
        worker.start_engine()  # @modal.enter(snap=True)
        try:
            yield worker
        finally:
            worker.stop_engine()  # @modal.exit()


def test_engine_starts_with_cuda_hidden_then_is_handed_over(container: Any) -> None:
    engine = container.worker.engine
    device = httpx.get(f"{engine.url}/comfy-publisher/device", trust_env=False).json()
    assert device == {"device": "cpu", "cuda_visible_devices": ""}  # GPU mode, CUDA hidden: the snapshot state
    assert "--cpu" not in (Path(engine.launch.log_path).read_text())  # not a plain CPU engine
    assert container.worker.device == "cpu (cuda hidden)"
    container.hand_over_gpu()  # @modal.enter(snap=False): no GPU on this machine, a plain CPU engine instead
    assert container.worker.device == "cpu"
    replacement = container.worker.engine
    assert replacement is not engine and not engine.is_running() and replacement.is_running()
    assert replacement.launch.cpu  # `--cpu`: it loads checkpoints (GPU mode with CUDA hidden cannot)


async def test_run_method_returns_outputs(container: Any) -> None:
    result = await container.run({"run_id": new_run_id(), "inputs": {"color": 0x102030}})
    assert result["status"] == "succeeded", result
    (output,) = result["outputs"]
    import base64

    assert image_of(base64.b64decode(output["data"])).getpixel((0, 0)) == inverted(0x102030)
    assert result["applied"] == {"color": 0x102030}


async def test_run_method_reports_bad_inputs_as_the_local_runtime_does(container: Any) -> None:
    result = await container.run({"run_id": new_run_id(), "inputs": {"color": -5}})
    assert result["status"] == "failed"
    assert result["error"]["type"] == "input_error" and "color" in result["error"]["message"]


class _Served:
    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.url = f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def endpoint(container: Any) -> AsyncIterator[str]:
    """The generated endpoint's FastAPI app, served on loopback, spawning the container's run locally."""
    served = _Served(create_endpoint(container.worker.spec, LocalJobs(container.run), key=KEY))
    task = asyncio.create_task(served.server.serve())
    while not served.server.started:
        await asyncio.sleep(0.02)
    yield served.url
    served.server.should_exit = True
    await task


async def test_endpoint_needs_the_key_and_checks_inputs(endpoint: str) -> None:
    async with httpx.AsyncClient(base_url=endpoint, trust_env=False) as http:
        assert (await http.get("/health")).status_code == 200
        assert (await http.post("/api/runs", json={"inputs": {}})).status_code == 401
        wrong = await http.post("/api/runs", json={"inputs": {}}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        bad = await http.post("/api/runs", json={"inputs": {"color": "red"}}, headers=AUTH)
        assert bad.status_code == 422 and bad.json()["detail"]["problems"][0]["input"] == "color"
        done = await http.post("/api/run", json={"inputs": {"color": 0xFFFFFF}}, headers=AUTH)
        assert done.status_code == 200 and done.json()["status"] == "succeeded", done.text
        (output,) = done.json()["outputs"]
        image = await http.get(output["url"], headers=AUTH)
        assert image_of(image.content).getpixel((0, 0)) == (0, 0, 0)


async def test_remote_runs_go_through_the_endpoint_and_report_like_the_pool(endpoint: str, container: Any) -> None:
    updates: list[RunUpdate] = []
    finished = asyncio.Event()

    async def on_update(update: RunUpdate) -> None:
        updates.append(update)
        if update.kind in ("succeeded", "failed", "cancelled", "timed_out"):
            finished.set()

    remote = RemoteRuns(on_update=on_update, poll_s=0.05)
    spec = container.worker.spec
    request = RunRequest(run_id=new_run_id(), workflow=spec.workflow, bindings=spec.inputs, values={"color": 0x00FF00},
                         output_nodes=spec.output_nodes)
    started = time.monotonic()
    remote.submit(request, RemoteTarget("modal:test", endpoint, KEY))
    await asyncio.wait_for(finished.wait(), 60)
    await remote.aclose()
    assert [u.kind for u in updates] == ["started", "succeeded"], updates
    outcome = updates[-1].outcome
    assert outcome is not None and outcome.run_id == request.run_id
    assert image_of(outcome.outputs[0].data).getpixel((0, 0)) == inverted(0x00FF00)
    assert updates[0].worker == "modal:test" and time.monotonic() - started < 60


async def test_remote_run_with_a_wrong_key_fails_clearly(endpoint: str, container: Any) -> None:
    updates: list[RunUpdate] = []

    async def on_update(update: RunUpdate) -> None:
        updates.append(update)

    remote = RemoteRuns(on_update=on_update, poll_s=0.05)
    spec = container.worker.spec
    remote.submit(RunRequest(run_id=new_run_id(), workflow=spec.workflow, bindings=spec.inputs, values={}),
                  RemoteTarget("modal:test", endpoint, "wrong"))
    for _ in range(200):
        if updates and updates[-1].kind == "failed":
            break
        await asyncio.sleep(0.05)
    await remote.aclose()
    assert updates[-1].kind == "failed" and "endpoint key" in updates[-1].error["message"]


