"""Files at the boundary, end to end over HTTP (the real app process, the real engine): a run names no file but its
own uploads and the app's own; workflows name no file outside the engine's folders; a caller's filename_prefix
stays in the run's folder; run errors carry no server paths; an upload's pixels are capped."""

from __future__ import annotations

import base64
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from app.forms.runner import describe_error
from app.runs.inputs import parse_values
from app.runs.redact import scrub_paths
from publisher import AppInput, AppOutput, AppSpec
from runtimes.engine.manager import EngineSettings
from runtimes.inputs import ImageLimits, InputProblems
from tests.support.paths import ENGINE_HOME
from tests.support.prompts import load_invert, shipped
from tests.support.server import AppServer

MAX_PIXELS = 64 * 64  # this module's server is started with this cap, through its environment variable


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine_url: str) -> Iterator[AppServer]:
    app = AppServer(tmp_path_factory.mktemp("app"), comfyui_url=engine_url,
                    env={"COMFY_PUBLISHER_MAX_IMAGE_PIXELS": str(MAX_PIXELS)}).start()
    yield app
    app.stop()


@pytest.fixture(scope="module")
def engine_dir(engine_settings: EngineSettings) -> Path:
    return engine_settings.data_dir / "comfyui"


def png(color: tuple[int, int, int] = (10, 20, 30), size: tuple[int, int] = (16, 16)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def publish(http: httpx.Client, admin: dict[str, str], workflow: dict[str, Any], inputs: list[dict[str, Any]],
            ) -> httpx.Response:
    return http.post("/api/apps", headers=admin, json={"name": "Boundary", "slug": f"b-{uuid.uuid4().hex[:8]}",
                                                       "workflow": workflow, "inputs": inputs})


@pytest.fixture(scope="module")
def photo_app(http: httpx.Client, admin: dict[str, str]) -> str:
    response = publish(http, admin, load_invert("example.png", prefix="inv"),
                       [{"node": "1", "input": "image", "name": "photo"}])
    assert response.status_code == 201, response.text
    return str(response.json()["slug"])


def run_count(http: httpx.Client, admin: dict[str, str], slug: str) -> int:
    return len(http.get(f"/api/runs?app={slug}&limit=200", headers=admin).json()["runs"])


def the_problem(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]["problems"]
    return dict(problem)


# --- defect 1: another run's upload ----------------------------------------------------------------------------

def test_a_run_cannot_name_another_runs_upload(server: AppServer, http: httpx.Client, admin: dict[str, str],
                                               runner: dict[str, str], photo_app: str) -> None:
    first = http.post(f"/api/apps/{photo_app}/run", headers=runner,
                      files={"photo": ("image-secret.png", png((200, 0, 0)), "image/png")}).json()
    assert first["status"] == "succeeded", first
    secret = first["inputs"]["photo"]  # the engine's name of the first run's upload
    assert secret.startswith(f"runs/{first['id']}/")

    before = run_count(http, admin, photo_app)
    other_key = {"Authorization": f"Bearer {server.create_key('other')}"}
    attempts = [
        {"files": {"inputs": (None, json.dumps({"photo": secret}))}},  # multipart: the 'inputs' JSON field
        {"files": {"photo": (None, secret)}},  # multipart: a text field
        {"json": {"inputs": {"photo": secret}}},  # JSON: an image is base64, never a name
    ]
    for attempt in attempts:
        problem = the_problem(http.post(f"/api/apps/{photo_app}/run", headers=other_key, **attempt))
        assert problem["input"] == "photo", problem
    assert run_count(http, admin, photo_app) == before  # refused before anything was recorded or run


def test_a_video_input_given_as_text_names_no_file(http: httpx.Client, admin: dict[str, str],
                                                   runner: dict[str, str], photo_app: str) -> None:
    workflow = {"1": {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}},
                "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
                "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "v"}}}
    response = publish(http, admin, workflow, [{"node": "1", "input": "file", "name": "clip"}])
    assert response.status_code == 201, response.text
    slug = response.json()["slug"]
    problem = the_problem(http.post(f"/api/apps/{slug}/run", headers=runner,
                                    json={"inputs": {"clip": "runs/0123456789abcdef/image-secret.png"}}))
    assert problem["input"] == "clip" and "not a file uploaded with this run" in problem["message"]


def test_the_forms_and_the_studio_check_file_values_the_same_way() -> None:
    # Their submissions come as Python values (GivenValues -> parse_values): a name for a file input is refused.
    spec = AppSpec(workflow=load_invert("example.png"), outputs=(AppOutput("3", "image", "Image"),),
                   inputs=(AppInput(node="1", input="image", type="image", name="photo"),))
    with pytest.raises(InputProblems) as refused:
        parse_values(spec, {"photo": "runs/other/image-secret.png"}, {}, ImageLimits())
    assert refused.value.problems[0]["input"] == "photo"
    assert parse_values(spec, {"photo": "example.png"}, {}, ImageLimits()).values == {"photo": "example.png"}


# --- defect 2: paths inside workflows --------------------------------------------------------------------------

@pytest.mark.parametrize("literal", ["../../outside.png", "/etc/hostname"])
def test_publishing_refuses_a_loader_file_outside_the_input_folder(http: httpx.Client, admin: dict[str, str],
                                                                   literal: str) -> None:
    response = publish(http, admin, load_invert(literal), [])
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]["problems"]
    assert "node 1 (LoadImage)" in problem and "input 'image'" in problem


def test_a_callers_prefix_writes_only_into_its_own_runs_folder(http: httpx.Client, admin: dict[str, str],
                                                               runner: dict[str, str], engine_dir: Path) -> None:
    response = publish(http, admin, shipped("demo_invert.json"),
                       [{"node": "3", "input": "filename_prefix", "name": "prefix"},
                        {"node": "1", "input": "width", "name": "size"},
                        {"node": "1", "input": "height", "name": "height"}])
    assert response.status_code == 201, response.text
    slug = response.json()["slug"]
    victim = http.post(f"/api/apps/{slug}/run", headers=runner, json={"inputs": {"size": 8, "height": 8}}).json()
    assert victim["status"] == "succeeded", victim

    runs = engine_dir / "output" / "runs"
    for prefix in (f"../{victim['id']}/planted", f"..\\{victim['id']}\\planted", f"/{victim['id']}/planted"):
        run = http.post(f"/api/apps/{slug}/run", headers=runner,
                        json={"inputs": {"prefix": prefix, "size": 8, "height": 8}}).json()
        assert run["status"] == "succeeded", run  # confined, not refused
        assert not list((runs / victim["id"]).rglob("planted*")), prefix  # nothing landed in the other run
        assert not list((engine_dir / "output").glob("planted*"))
        (written,) = (runs / run["id"]).rglob("planted*")  # where the engine wrote it: the run's own folder
        assert run["outputs"][0]["filename"].endswith(written.name)


def test_a_prefix_computed_from_a_callers_text_stays_in_its_own_runs_folder(
        http: httpx.Client, admin: dict[str, str], runner: dict[str, str], engine_dir: Path) -> None:
    workflow = shipped("demo_invert.json")
    workflow["4"] = {"class_type": "PrimitiveString", "inputs": {"value": "named"}}
    workflow["3"]["inputs"]["filename_prefix"] = ["4", 0]  # a link: no literal to rewrite before the engine
    response = publish(http, admin, workflow, [{"node": "4", "input": "value", "name": "prefix"}])
    assert response.status_code == 201, response.text
    slug = response.json()["slug"]
    victim = http.post(f"/api/apps/{slug}/run", headers=runner, json={"inputs": {}}).json()
    assert victim["status"] == "succeeded", victim

    runs = engine_dir / "output" / "runs"
    for prefix in (f"../{victim['id']}/linked", f"..\\{victim['id']}\\linked", f"....//{victim['id']}/linked"):
        run = http.post(f"/api/apps/{slug}/run", headers=runner, json={"inputs": {"prefix": prefix}}).json()
        assert run["status"] == "succeeded", run
        assert not list((runs / victim["id"]).rglob("*linked*")), prefix
        (written,) = (runs / run["id"]).rglob("*linked*")  # the engine confined it to the run's own folder
        assert written.name.lstrip("_") in run["outputs"][0]["filename"]  # and the run's output is that file


# --- run errors: no server paths -------------------------------------------------------------------------------

def test_an_engine_error_shows_callers_no_server_paths(http: httpx.Client, admin: dict[str, str],
                                                       runner: dict[str, str], engine_dir: Path) -> None:
    broken = f"broken-{uuid.uuid4().hex[:6]}.png"
    (engine_dir / "input" / broken).write_bytes(b"not an image at all")  # fails as the node runs
    response = publish(http, admin, load_invert(broken), [])
    assert response.status_code == 201, response.text
    run = http.post(f"/api/apps/{response.json()['slug']}/run", headers=runner, json={"inputs": {}}).json()
    assert run["status"] == "failed", run
    shown = json.dumps(http.get(f"/api/runs/{run['id']}", headers=runner).json()["error"])
    assert run["error"]["node_id"] == "1" and broken in shown  # still says where and what
    for server_path in (engine_dir, ENGINE_HOME, Path.home()):
        assert str(server_path) not in shown, shown


@pytest.mark.parametrize(("text", "kept"), [
    ("cannot identify image file '/tmp/pytest-1/engine/input/b.png'", "cannot identify image file '<server>/b.png'"),
    ('  File "/home/bob/ComfyUI/nodes.py", line 3', '  File "<server>/nodes.py", line 3'),
    ("C:\\Users\\bob\\ComfyUI\\nodes.py failed", "<server>/nodes.py failed"),
    ("\\\\fileserver\\share\\x.png", "<server>/x.png"),
    ("see http://127.0.0.1:8188/view/x and runs/abc/x.png", "see http://127.0.0.1:8188/view/x and runs/abc/x.png"),
])
def test_server_paths_are_cut_to_their_file_name(text: str, kept: str) -> None:
    assert scrub_paths({"message": text, "details": {"traceback": [text]}}) == {"message": kept,
                                                                              "details": {"traceback": [kept]}}


def test_a_forms_visitor_sees_no_server_paths_either() -> None:
    said = describe_error({"type": "execution_error", "node_id": "1", "node_type": "LoadImage",
                           "message": "cannot identify image file '/srv/comfy/input/b.png'"})
    assert "/srv/" not in said and "b.png" in said


# --- the pixel cap ---------------------------------------------------------------------------------------------

def test_an_upload_with_too_many_pixels_is_refused_as_such(http: httpx.Client, runner: dict[str, str],
                                                           photo_app: str) -> None:
    for kind in ("multipart", "json"):
        big = png(size=(65, 64))  # just above this server's cap (the environment variable's value)
        if kind == "multipart":
            response = http.post(f"/api/apps/{photo_app}/run", headers=runner,
                                 files={"photo": ("big.png", big, "image/png")})
        else:
            response = http.post(f"/api/apps/{photo_app}/run", headers=runner,
                                 json={"inputs": {"photo": base64.b64encode(big).decode()}})
        problem = the_problem(response)
        assert problem["input"] == "photo" and "too many pixels" in problem["message"], problem
    fits = http.post(f"/api/apps/{photo_app}/run", headers=runner,
                     files={"photo": ("fits.png", png(size=(64, 64)), "image/png")}).json()
    assert fits["status"] == "succeeded", fits
