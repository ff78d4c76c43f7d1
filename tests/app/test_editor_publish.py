"""The ComfyUI editor's way in, over HTTP against the real app with --auth on: its "Publish…" form post
(POST /editor/publish), the studio's link to the editor, and `launch.py install-extension`. The editor itself, in
a real browser, is tests/browser/test_editor_publish.py."""

from __future__ import annotations

import html
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.editor.drafts import DraftStore
from tests.support.paths import REPO
from tests.support.server import AppServer

FIXTURES = REPO / "tests" / "publisher" / "fixtures"
UI_WORKFLOW = json.loads((FIXTURES / "ui_app_mode_txt2img.app.json").read_text())
OTHER_EDITOR = "http://gpu-box.example:8188"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine_url: str) -> Iterator[AppServer]:
    app = AppServer(tmp_path_factory.mktemp("editor"), comfyui_url=engine_url,
                    extra=("--auth", "ann:secret", "--editor-origin", OTHER_EDITOR)).start()
    yield app
    app.stop()


@pytest.fixture(scope="module")
def engine_origin(engine_url: str) -> str:
    return engine_url.rstrip("/")


@contextmanager
def logged_in(server: AppServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as client:
        answer = client.post("/login", data={"user": "ann", "password": "secret", "next": "/studio/"})
        assert answer.status_code == 303, answer.text
        yield client


def send(client: httpx.Client, origin: str | None, **fields: Any) -> httpx.Response:
    """The form the extension posts: multipart text fields, from the editor's origin."""
    values = {"workflow": json.dumps(UI_WORKFLOW), "prompt": json.dumps({"1": {"class_type": "X", "inputs": {}}}),
              "name": "poster.json", **fields}
    files = {name: (None, value) for name, value in values.items() if value is not None}
    return client.post("/editor/publish", files=files, headers={"Origin": origin} if origin else {})


def stored(server: AppServer, response: httpx.Response) -> Any:
    location = response.headers["location"]
    assert location.startswith("/studio/?draft=")
    return DraftStore(server.data_dir / "editor-drafts").load(location.split("=", 1)[1])


def test_the_editors_graph_is_kept_and_the_studio_opens_with_it(server: AppServer, engine_origin: str) -> None:
    with logged_in(server) as client:
        answer = send(client, engine_origin, name="  my   poster.json ")
    assert answer.status_code == 303, answer.text
    draft = stored(server, answer)
    assert draft.workflow == UI_WORKFLOW
    assert draft.prompt == {"1": {"class_type": "X", "inputs": {}}}
    assert draft.name == "my poster.json"


def test_without_the_studio_login_the_editor_is_told_to_log_in(server: AppServer, engine_origin: str) -> None:
    drafts = server.data_dir / "editor-drafts"
    before = set(drafts.glob("*.json"))
    with httpx.Client(base_url=server.url, trust_env=False) as client:
        answer = send(client, engine_origin)
    assert answer.status_code == 401
    assert "not logged in" in answer.text and "/login?next=/studio/" in answer.text
    assert set(drafts.glob("*.json")) == before  # nothing kept for a visitor who may not publish


@pytest.mark.parametrize("origin", ["https://evil.example", "http://192.168.1.20:8188", "null"])
def test_another_site_cannot_push_a_workflow_into_a_logged_in_studio(server: AppServer, origin: str) -> None:
    with logged_in(server) as client:
        answer = send(client, origin)
    assert answer.status_code == 403
    assert "--editor-origin" in answer.text


@pytest.mark.parametrize("origin", ["http://localhost:8000", "http://127.0.0.1:8188", OTHER_EDITOR, None])
def test_loopback_editors_the_engines_and_named_ones_may_send(server: AppServer, origin: str | None) -> None:
    with logged_in(server) as client:
        assert send(client, origin).status_code == 303


@pytest.mark.parametrize(("fields", "said"), [
    ({"workflow": None}, "no 'workflow' field"),
    ({"workflow": "{not json"}, "'workflow' is not JSON"),
    ({"workflow": json.dumps({"3": {"class_type": "KSampler", "inputs": {}}})}, "UI format"),
    ({"prompt": "[1, 2]"}, "'prompt' must be the JSON object"),
])
def test_a_malformed_form_says_which_field_is_wrong(server: AppServer, engine_origin: str, fields: dict[str, Any],
                                                     said: str) -> None:
    with logged_in(server) as client:
        answer = send(client, engine_origin, **fields)
    assert answer.status_code == 422
    assert said in html.unescape(answer.text)


def test_the_studio_links_to_the_editor_of_its_engine(server: AppServer, engine_origin: str) -> None:
    with logged_in(server) as client:
        answer = client.get("/studio/editor", headers={"Accept": "text/html"})
    assert answer.status_code == 307 and answer.headers["location"].rstrip("/") == engine_origin
    with httpx.Client(base_url=server.url, trust_env=False) as anonymous:  # a link followed while logged out
        answer = anonymous.get("/studio/editor", headers={"Accept": "text/html"})
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/studio/editor"


# --- launch.py install-extension ---------------------------------------------------------------------------------


def install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "launch.py", "install-extension", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


def test_install_extension_puts_the_publish_command_into_a_users_comfyui(tmp_path: Path) -> None:
    comfyui = tmp_path / "ComfyUI"
    (comfyui / "custom_nodes").mkdir(parents=True)
    (comfyui / "main.py").write_text("")
    done = install("--comfyui-path", str(comfyui), "--app-url", "http://127.0.0.1:9000/")
    assert done.returncode == 0, done.stderr
    folder = comfyui / "custom_nodes" / "comfy_publisher"
    assert "File > Publish" in done.stdout and str(folder) in done.stdout
    assert json.loads((folder / "web" / "publisher.json").read_text()) == {"app_url": "http://127.0.0.1:9000"}
    assert "ComfyPublisher.Publish" in (folder / "web" / "publish.js").read_text()
    assert "WEB_DIRECTORY" in (folder / "__init__.py").read_text()

    (folder / "web" / "stale.js").write_text("// from an older version")
    again = install("--comfyui-path", str(comfyui), "--app-url", "http://127.0.0.1:9001")
    assert again.returncode == 0, again.stderr
    assert not (folder / "web" / "stale.js").exists()  # replaced whole, not merged
    assert json.loads((folder / "web" / "publisher.json").read_text()) == {"app_url": "http://127.0.0.1:9001"}
    assert sorted(p.name for p in (comfyui / "custom_nodes").iterdir()) == ["comfy_publisher"]
    assert sorted(p.name for p in comfyui.iterdir()) == ["custom_nodes", "main.py"]  # no staging folder left


@pytest.mark.parametrize(("args", "said"), [
    (("--comfyui-path", "{tmp}"), "is not a ComfyUI folder"),
    (("--comfyui-path", "{tmp}/nowhere"), "is not a folder"),
    (("--comfyui-path", "{comfyui}", "--app-url", "127.0.0.1:7860"), "must be an http(s) URL"),
    ((), "--comfyui-path DIR"),
])
def test_install_extension_refuses_what_is_not_a_comfyui_or_an_address(tmp_path: Path, args: tuple[str, ...],
                                                                         said: str) -> None:
    comfyui = tmp_path / "ComfyUI"
    comfyui.mkdir()
    (comfyui / "main.py").write_text("")
    done = install(*(a.format(tmp=tmp_path, comfyui=comfyui) for a in args))
    assert done.returncode != 0
    assert said in done.stderr
    assert not (comfyui / "custom_nodes").exists()


# --- the draft store ---------------------------------------------------------------------------------------------


def test_a_draft_id_never_names_a_path(tmp_path: Path) -> None:
    store = DraftStore(tmp_path / "drafts")
    (tmp_path / "secret.json").write_text(json.dumps({"workflow": {}, "name": "x"}))
    for probe in ("../secret", "..%2Fsecret", "a" * 10, "", "a/" * 10):
        assert store.load(probe) is None
    saved = store.save({"nodes": []}, None, "n")
    assert store.load(saved.id) == saved


def test_old_drafts_are_pruned_so_the_button_cannot_fill_the_disk(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from app.editor import drafts

    monkeypatch.setattr(drafts, "MAX_DRAFTS", 3)
    store = DraftStore(tmp_path)
    saved = [store.save({"nodes": [], "n": i}, None, str(i)) for i in range(5)]
    kept = [d for d in saved if store.load(d.id) is not None]
    assert len(list(tmp_path.glob("*.json"))) == 3
    assert saved[-1] in kept
