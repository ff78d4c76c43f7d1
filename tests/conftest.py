"""Shared fixtures: the REAL bundled ComfyUI engine (installed once into a cache), its schemas, and a
random-weight SD1.5 checkpoint synthesized with the engine's own code."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from runtimes.comfy.client import ComfyClient
from runtimes.engine.install import BundledEngine, EngineInstall
from runtimes.engine.manager import Engine, EngineManager, EngineSettings
from runtimes.engine.process import EngineLaunch, EngineProcess
from tests import setup
from tests.support.comfy_org_api import ComfyOrgApi
from tests.support.paths import CHECKPOINT, CHECKPOINT_NAME, ENGINE_HOME
from tests.support.server import AppServer


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@pytest.fixture(scope="session")
def engine_install() -> EngineInstall:
    return BundledEngine.under(ENGINE_HOME).ensure(_progress)


@pytest.fixture(scope="session")
def engine_settings(tmp_path_factory: pytest.TempPathFactory, engine_install: EngineInstall) -> EngineSettings:
    return EngineSettings(
        data_dir=tmp_path_factory.mktemp("engine-data"), engine_home=ENGINE_HOME, disable_api_nodes=True
    )


@pytest.fixture(scope="session")
def engine(engine_settings: EngineSettings) -> Iterator[Engine]:
    """One engine for the whole session; tests that kill engines start their own."""
    manager = EngineManager(engine_settings, progress=_progress)
    (engine,) = manager.start()
    yield engine
    manager.stop()


@pytest.fixture(scope="session")
def engine_url(engine: Engine) -> str:
    return engine.url


@pytest.fixture(scope="session")
def object_info(engine_url: str) -> dict[str, Any]:
    return httpx.get(f"{engine_url}/object_info", timeout=30, trust_env=False).json()


@pytest.fixture(scope="session")
def comfy_org_api() -> Iterator[ComfyOrgApi]:
    """Where the API nodes engine's nodes call: a prompt an API node runs must not leave the machine."""
    api = ComfyOrgApi().start()
    yield api
    api.stop()


@pytest.fixture(scope="session")
def api_nodes_engine_url(tmp_path_factory: pytest.TempPathFactory, engine_install: EngineInstall,
                         comfy_org_api: ComfyOrgApi) -> Iterator[str]:
    """A second engine with its API nodes on (they ship with it; the session engine switches them off), started
    only by the tests that ask for it. API nodes call out when they run (to `comfy_org_api`), never when they load
    or validate."""
    base = tmp_path_factory.mktemp("api-nodes-engine")
    (base / "comfyui" / "custom_nodes").mkdir(parents=True)
    process = EngineProcess(EngineLaunch(install=engine_install, base_dir=base / "comfyui",
                                         log_path=base / "engine.log", name="api-nodes", disable_api_nodes=False,
                                         extra_args=("--comfy-api-base", comfy_org_api.url)))
    process.start()
    yield process.url
    process.stop()


@pytest.fixture(scope="session")
def api_nodes_object_info(api_nodes_engine_url: str) -> dict[str, Any]:
    return httpx.get(f"{api_nodes_engine_url}/object_info", timeout=30, trust_env=False).json()


@pytest.fixture(scope="session")
def sd15_checkpoint(engine_settings: EngineSettings) -> str:
    """The checkpoint name the session engine lists (synthesized once, then cached)."""
    if not CHECKPOINT.exists():
        setup.main()
    link = engine_settings.data_dir / "comfyui" / "models" / "checkpoints" / CHECKPOINT_NAME
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(CHECKPOINT)
    return CHECKPOINT_NAME


@pytest.fixture
async def client(engine_url: str) -> AsyncIterator[ComfyClient]:
    async with ComfyClient(engine_url) as comfy:
        yield comfy


@pytest.fixture(scope="session")
def shared_app(tmp_path_factory: pytest.TempPathFactory, engine_url: str, sd15_checkpoint: str) -> Iterator[AppServer]:
    """One app in its default settings on the session engine, for the modules that only publish and run apps of
    their own (own keys, own slugs) and never restart it: each app start costs seconds (gradio's import alone).
    After the checkpoint's link: the app reads the engine's node schemas (its model lists) once."""
    app = AppServer(tmp_path_factory.mktemp("shared-app"), comfyui_url=engine_url).start()
    yield app
    app.stop()


# The app's HTTP tests: each module defines its own `server` (an AppServer, or the shared_app); these build on it.
@pytest.fixture(scope="module")
def admin(server: AppServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.create_key('admin', admin=True)}"}


@pytest.fixture(scope="module")
def runner(server: AppServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.create_key('runner')}"}


@pytest.fixture(scope="module")
def http(server: AppServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60, trust_env=False) as client:
        yield client
