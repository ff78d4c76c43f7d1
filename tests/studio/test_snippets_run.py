"""The Apps tab's snippets work as pasted: each one runs against a live server and gets the app's output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import httpx
import pytest

from app.studio.snippets import snippets
from db import crud_apps
from db.session import create_db_engine, make_session_factory, sqlite_url
from publisher import AppSpec
from tests.support.prompts import shipped
from tests.support.server import AppServer


@pytest.fixture(scope="module")
def server(shared_app: AppServer) -> AppServer:
    return shared_app


def _published(server: AppServer, admin: str) -> tuple[str, AppSpec]:
    slug = f"snip-{uuid.uuid4().hex[:6]}"
    response = httpx.post(f"{server.url}/api/apps", headers={"Authorization": f"Bearer {admin}"}, timeout=60,
                          trust_env=False, json={"name": "Snippet demo", "slug": slug,
                                                 "workflow": shipped("demo_invert.json"),
                                                 "inputs": [{"node": "1", "input": "color", "name": "color"}]})
    assert response.status_code == 201, response.text
    engine = create_db_engine(sqlite_url(server.data_dir))
    try:
        with make_session_factory(engine)() as session:
            app = crud_apps.get_app(session, slug=slug)
            assert app is not None
            return slug, AppSpec.from_dict(crud_apps.get_version(session, app_id=app.id).spec)
    finally:
        engine.dispose()


def test_curl_python_and_javascript_snippets_run_as_pasted(server: AppServer) -> None:
    admin = server.create_key("admin", admin=True)
    slug, spec = _published(server, admin)
    code = snippets(server.url, slug, spec, public=False)
    env = {**os.environ, "COMFY_PUBLISHER_KEY": server.create_key("runner"), "NO_PROXY": "*"}

    curl = subprocess.run(["bash", "-c", code["curl"]], capture_output=True, text=True, env=env, timeout=120)
    assert curl.returncode == 0, curl.stderr
    run = json.loads(curl.stdout)
    assert run["status"] == "succeeded" and run["outputs"][0]["url"].startswith("/files/outputs/")

    python = subprocess.run([sys.executable, "-c", code["python (httpx)"]], capture_output=True, text=True, env=env,
                            timeout=120)
    assert python.returncode == 0, python.stderr
    assert python.stdout.startswith("succeeded [") and f"{server.url}/files/outputs/" in python.stdout

    if shutil.which("node") is None:
        pytest.skip("node is not installed: the JavaScript snippet was not run")
    node = subprocess.run(["node", "-e", code["javascript (fetch)"]], capture_output=True, text=True, env=env,
                          timeout=120)
    assert node.returncode == 0, node.stderr
    assert node.stdout.startswith("succeeded [") and f"{server.url}/files/outputs/" in node.stdout
