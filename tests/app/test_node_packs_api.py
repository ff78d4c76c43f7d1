"""Node packs on the real app and its own managed engine: a pack installed with the CLI before the app starts and
one installed through the API (which restarts the engine), a broken one reported with the engine's log lines while
the engine serves, a workflow using a pack's node published and run, refusals, removal, and an engine the app does
not manage. pip's index is a closed loopback port: the packs only require what the engine's venv has."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from runtimes.engine.install import EngineInstall
from runtimes.engine.process import free_port
from tests.app.test_api import publish
from tests.support.comfy_registry import LoopbackRegistry, loopback_registry
from tests.support.node_packs import BROKEN_INIT, GOOD_INIT, GOOD_NODE, MISSING_MODULE, git_pack
from tests.support.paths import ENGINE_HOME, REPO
from tests.support.server import AppServer

CLOSED = f"http://127.0.0.1:{free_port()}"
OFFLINE = {"PIP_INDEX_URL": f"{CLOSED}/simple", "PIP_FIND_LINKS": "", "COMFY_REGISTRY_URL": CLOSED}
STUDIO_PACK = ("comfyui-studio-invert", "1.0.0")  # served by the loopback registry, installed from the studio
RESTART_S = 300  # an install answers once the engine is back (tens of seconds on a small CPU)


PACK_WORKFLOW = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
    "2": {"class_type": GOOD_NODE, "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "pack"}},
}


@pytest.fixture(scope="module")
def pins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    src = tmp_path_factory.mktemp("pack-repos")
    return {
        "good": git_pack(src, "invert_pack", {"__init__.py": GOOD_INIT, "requirements.txt": "einops\n"}),
        "broken": git_pack(src, "broken_pack", {"__init__.py": BROKEN_INIT}),
        "broken_later": git_pack(src, "broken_later", {"__init__.py": BROKEN_INIT}),
        "old_torch": git_pack(src, "old_torch", {"__init__.py": GOOD_INIT, "requirements.txt": "torch==2.10.0\n"}),
    }


def nodes_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "launch.py", "--data-dir", str(data_dir), "--engine-home", str(ENGINE_HOME),
                           *args], cwd=REPO, capture_output=True, text=True, env={**os.environ, **OFFLINE})


@pytest.fixture(scope="module")
def registry() -> Iterator[LoopbackRegistry]:
    with loopback_registry() as served:
        served.add(*STUDIO_PACK, {"__init__.py": GOOD_INIT.replace(GOOD_NODE, "StudioInvert"),
                                  "requirements.txt": "einops\n"})
        yield served


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine_install: EngineInstall, pins: dict[str, str],
           registry: LoopbackRegistry) -> Iterator[AppServer]:
    data_dir = tmp_path_factory.mktemp("packs-app")
    installed = nodes_cli(data_dir, "nodes", "install", pins["broken"])  # no server yet: the folder only
    assert installed.returncode == 0, installed.stderr
    assert "Installed broken_pack" in installed.stdout and "Restart the app" in installed.stdout
    app = AppServer(data_dir, comfyui_url=None, env={**OFFLINE, "COMFY_REGISTRY_URL": registry.url})
    app.start(timeout=RESTART_S)
    yield app
    app.stop()


@pytest.fixture(scope="module")
def http(server: AppServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=RESTART_S, trust_env=False) as client:
        yield client


def _packs(http: httpx.Client, admin: dict[str, str]) -> dict[str, dict[str, object]]:
    response = http.get("/api/nodes", headers=admin)
    assert response.status_code == 200, response.text
    return {pack["name"]: pack for pack in response.json()["packs"]}


def test_a_pack_that_fails_to_import_is_reported_with_its_log_lines(http: httpx.Client, admin: dict[str, str],
                                                                   server: AppServer) -> None:
    broken = _packs(http, admin)["broken_pack"]
    assert broken["state"] == "failed" and broken["node_types"] == []
    log = "\n".join(broken["log"])  # type: ignore[arg-type]
    assert f"No module named '{MISSING_MODULE}'" in log and "Cannot import" in log and "(IMPORT FAILED)" in log
    assert http.get("/readyz").status_code == 200  # the engine serves all the same
    listed = nodes_cli(server.data_dir, "nodes", "list")
    assert listed.returncode == 0 and "broken_pack" in listed.stdout and "failed" in listed.stdout
    assert f"No module named '{MISSING_MODULE}'" in listed.stdout


def test_a_pack_installed_through_the_api_is_loaded_after_the_restart(http: httpx.Client, admin: dict[str, str],
                                                                     server: AppServer, pins: dict[str, str]) -> None:
    before = http.post("/api/workflows/analyze", headers=admin, json={"workflow": PACK_WORKFLOW}).json()
    assert [m["class_type"] for m in before["missing_node_types"]] == [GOOD_NODE]  # the app has read the schemas
    response = http.post("/api/nodes", headers=admin, json={"pin": pins["good"]})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["restarted"] == 1
    good = {pack["name"]: pack for pack in body["packs"]}["invert_pack"]
    assert (good["state"], good["node_types"], good["pin"]) == ("loaded", [GOOD_NODE], pins["good"])
    engine_url = server.engines()[0]["url"]
    object_info = httpx.get(f"{engine_url}/object_info", timeout=30, trust_env=False).json()
    assert object_info[GOOD_NODE]["python_module"] == "custom_nodes.invert_pack"


def test_a_pack_installed_through_the_api_that_fails_to_import_is_said_in_the_answer(
        http: httpx.Client, admin: dict[str, str], pins: dict[str, str]) -> None:
    response = http.post("/api/nodes", headers=admin, json={"pin": pins["broken_later"]})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["notes"][0].startswith("broken_later failed to import in the engine (")
    assert "(IMPORT FAILED)" in body["notes"][0] and "nodes remove broken_later" in body["notes"][0]
    later = {pack["name"]: pack for pack in body["packs"]}["broken_later"]
    assert later["state"] == "failed" and any(MISSING_MODULE in line for line in later["log"])
    assert http.get("/readyz").status_code == 200


def test_a_workflow_using_the_packs_node_publishes_with_its_pin_and_runs(http: httpx.Client, admin: dict[str, str],
                                                                        pins: dict[str, str]) -> None:
    workflow = PACK_WORKFLOW
    slug = f"pack-{uuid.uuid4().hex[:6]}"
    published = publish(http, admin, name="Pack invert", slug=slug, workflow=workflow,
                        inputs=[{"node": "1", "input": "color", "name": "color"}],
                        custom_nodes=[pins["good"], pins["good"]])
    assert published.status_code == 201, published.text
    repo, commit = pins["good"].rsplit("@", 1)
    assert published.json()["latest"]["custom_nodes"] == [{"repo": repo, "commit": commit}]
    run = http.post(f"/api/apps/{slug}/run", headers=admin, json={"inputs": {"color": 0}}).json()
    assert run["status"] == "succeeded", run
    pixel = Image.open(io.BytesIO(http.get(run["outputs"][0]["url"]).content)).convert("RGB").getpixel((0, 0))
    assert pixel == (255, 255, 255)  # black, inverted by the pack's node


def test_publish_refuses_a_pin_that_is_not_exact(http: httpx.Client, admin: dict[str, str]) -> None:
    workflow = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
                "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}
    refused = publish(http, admin, name="Bad pin", workflow=workflow,
                      custom_nodes=["https://github.com/owner/pack@0a1b2c3"])
    assert refused.status_code == 422
    assert "custom_nodes[1]" in refused.text and "give the full 40-hex commit" in refused.text
    twice = publish(http, admin, name="Two pins", workflow=workflow,
                    custom_nodes=["comfyui-thing@1.0.0", "comfyui-thing@1.0.1"])
    assert twice.status_code == 422 and "two pins of the pack 'comfyui-thing': keep one" in twice.text


def test_a_pack_that_would_replace_torch_is_refused_and_leaves_nothing(http: httpx.Client, admin: dict[str, str],
                                                                      server: AppServer, pins: dict[str, str]) -> None:
    before = sorted(p.name for p in (server.data_dir / "comfyui").iterdir())
    response = http.post("/api/nodes", headers=admin, json={"pin": pins["old_torch"]})
    assert response.status_code == 422
    assert "pack old_torch needs torch==2.10.0; the engine is pinned to torch 2.11.0" in response.text
    assert "old_torch" not in _packs(http, admin)
    assert sorted(p.name for p in (server.data_dir / "comfyui").iterdir()) == before
    bad = http.post("/api/nodes", headers=admin, json={"pin": "comfyui-thing@latest"})
    assert bad.status_code == 422 and "must be x.y.z" in bad.text


def test_only_admins_manage_packs(http: httpx.Client, runner: dict[str, str]) -> None:
    assert http.get("/api/nodes").status_code == 401
    assert http.get("/api/nodes", headers=runner).status_code == 403
    assert http.post("/api/nodes", headers=runner, json={"pin": "comfyui-thing@1.0.0"}).status_code == 403


def test_a_pack_removed_through_the_api_is_gone_after_the_restart(http: httpx.Client, admin: dict[str, str],
                                                                 server: AppServer) -> None:
    assert http.delete("/api/nodes/nothing_here", headers=admin).status_code == 404
    response = http.delete("/api/nodes/broken_pack", headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["restarted"] == 1
    assert {p["name"] for p in response.json()["packs"]} == {"invert_pack", "broken_later"}
    assert not (server.data_dir / "comfyui" / "custom_nodes" / "broken_pack").exists()
    assert http.get("/readyz").status_code == 200


def test_an_engine_the_app_does_not_manage_gets_no_packs(tmp_path: Path, server: AppServer,
                                                         pins: dict[str, str]) -> None:
    external = AppServer(tmp_path / "external", comfyui_url=server.engines()[0]["url"], env=OFFLINE).start()
    try:
        admin = {"Authorization": f"Bearer {external.create_key('admin', admin=True)}"}
        response = httpx.post(f"{external.url}/api/nodes", headers=admin, json={"pin": pins["good"]},
                              timeout=60, trust_env=False)
        assert response.status_code == 409 and "--comfyui-url" in response.text
        assert httpx.get(f"{external.url}/api/nodes", headers=admin, trust_env=False).json()["managed"] is False
    finally:
        external.stop()
    refused = nodes_cli(tmp_path / "cli", "--comfyui-url", "http://127.0.0.1:9", "nodes", "install", pins["good"])
    assert refused.returncode == 1 and "--comfyui-url" in refused.stderr


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs /usr/bin/chromium (make test installs it)")
def test_the_studios_engine_tab_installs_lists_and_removes_a_registry_pack(server: AppServer,
                                                                          registry: LoopbackRegistry) -> None:
    from tests.support.browser import chromium

    pin = "@".join(STUDIO_PACK)
    with chromium() as context:
        page = context.new_page()  # type: ignore[attr-defined]
        page.goto(f"{server.url}/studio/")
        page.click("button[role=tab]:has-text('Engine')")
        page.wait_for_function("document.querySelector('#node-packs-list').innerText.includes('_pack')",
                               timeout=30_000)  # the packs installed before (by the tests above, or the fixture)
        page.fill("#node-pack-pin textarea, #node-pack-pin input", pin)
        page.click("#node-pack-install")
        page.wait_for_selector("#node-pack-result :text('Installed')", timeout=RESTART_S * 1000)
        assert "1 engine(s) restarted" in page.inner_text("#node-pack-result")
        listing = page.inner_text("#node-packs-list")
        assert STUDIO_PACK[0] in listing and "StudioInvert" in listing and pin in listing
        assert f"/nodes/{STUDIO_PACK[0]}/install?version={STUDIO_PACK[1]}" in registry.requests
        page.click("#node-pack-name input")
        page.click(f"[role=option]:has-text('{STUDIO_PACK[0]}')")
        page.click("#node-pack-remove")
        page.wait_for_selector("#node-pack-result :text('Removed')", timeout=RESTART_S * 1000)
        assert STUDIO_PACK[0] not in page.inner_text("#node-packs-list")


def test_the_cli_removes_a_pack_and_says_to_restart(server: AppServer) -> None:
    unknown = nodes_cli(server.data_dir, "nodes", "remove", "nothing_here")
    assert unknown.returncode == 1 and "no pack 'nothing_here'" in unknown.stderr
    removed = nodes_cli(server.data_dir, "nodes", "remove", "invert_pack")
    assert removed.returncode == 0, removed.stderr
    assert "Removed invert_pack. Restart the app" in removed.stdout
    assert not (server.data_dir / "comfyui" / "custom_nodes" / "invert_pack").exists()
    assert "invert_pack" not in nodes_cli(server.data_dir, "nodes", "list").stdout
