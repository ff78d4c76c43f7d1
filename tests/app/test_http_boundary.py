"""The HTTP boundary against the real app: body caps, odd but well-formed requests answered 4xx (never 500), errors
that never echo a huge value, and one error shape everywhere."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from runtimes.media import largest_upload_bytes
from tests.support.prompts import shipped
from tests.support.server import AppServer

UPLOAD_MB = 1  # small caps keep the bodies of these tests small: a run's JSON may be 4/3 of the largest upload + 1 MiB
MIB = 2**20
LARGEST_UPLOAD = largest_upload_bytes(UPLOAD_MB * MIB)  # a video may be larger than an image (runtimes.media)
OVER_RUN_CAPS = LARGEST_UPLOAD * 4 // 3 + 2 * MIB
HUGE = 2**70  # past SQLite's signed 64-bit INTEGER


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine_url: str) -> Iterator[AppServer]:
    app = AppServer(tmp_path_factory.mktemp("boundary"), comfyui_url=engine_url,
                    extra=("--max-upload-mb", str(UPLOAD_MB))).start()
    yield app
    app.stop()


def _publish(http: httpx.Client, admin: dict[str, str], **body: Any) -> str:
    response = http.post("/api/apps", json=body, headers=admin)
    assert response.status_code == 201, response.text
    return str(response.json()["slug"])


@pytest.fixture(scope="module")
def demo(http: httpx.Client, admin: dict[str, str]) -> str:
    return _publish(http, admin, name="Boundary demo", slug=f"bd-{uuid.uuid4().hex[:6]}", public=True,
                    workflow=shipped("demo_invert.json"), inputs=[{"node": "1", "input": "color", "name": "color"}])


@pytest.fixture(scope="module")
def photo_app(http: httpx.Client, admin: dict[str, str]) -> str:
    workflow = {"1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}},
                "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
                "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "bd"}}}
    return _publish(http, admin, name="Boundary photo", slug=f"bp-{uuid.uuid4().hex[:6]}", public=True,
                    workflow=workflow, inputs=[{"node": "1", "input": "image", "name": "photo", "required": True}])


def _png(size: int = 8) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), (10, 20, 30)).save(out, format="PNG")
    return out.getvalue()


def _detail_text(response: httpx.Response) -> str:
    return json.dumps(response.json()["detail"])


# --- defect 3: body caps, and no value echoed back -------------------------------------------------------

def test_json_run_body_over_the_cap_is_refused_before_parsing(http: httpx.Client, demo: str) -> None:
    body = b'{"inputs": {"color": "' + b"9" * (OVER_RUN_CAPS) + b'"}}'
    response = http.post(f"/api/apps/{demo}/runs", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "--max-upload-mb" in response.json()["detail"] and len(response.content) < 1000


def test_chunked_body_over_the_cap_is_cut_off(http: httpx.Client, demo: str) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts what arrives
        yield b'{"inputs": {"color": "'
        for _ in range(OVER_RUN_CAPS // (MIB // 8)):
            yield b"9" * (MIB // 8)
        yield b'"}}'

    response = http.post(f"/api/apps/{demo}/runs", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "--max-upload-mb" in response.json()["detail"]


def test_small_bodies_have_a_small_cap(http: httpx.Client, admin: dict[str, str]) -> None:
    response = http.post("/api/keys", content=json.dumps({"name": "x" * (2 * MIB)}),
                         headers={**admin, "Content-Type": "application/json"})
    assert response.status_code == 413 and len(response.content) < 1000


def test_a_run_image_under_the_cap_still_goes_through(http: httpx.Client, photo_app: str) -> None:
    image = _png(300)
    response = http.post(f"/api/apps/{photo_app}/runs", files={"photo": ("ok.png", image, "image/png")})
    assert response.status_code == 202, response.text


def test_form_uploads_work_up_to_the_upload_cap(http: httpx.Client, photo_app: str) -> None:
    """The forms (Gradio) upload through their own route: under the cap it works, over it is refused."""
    fits = http.post(f"/apps/{photo_app}/gradio_api/upload",
                     files={"files": ("a.png", _png() + b"\0" * (MIB - 200_000), "image/png")})
    assert fits.status_code == 200, fits.text
    too_big = http.post(f"/apps/{photo_app}/gradio_api/upload",
                        files={"files": ("b.png", b"\0" * (LARGEST_UPLOAD + MIB), "image/png")})
    assert too_big.status_code == 413


def test_422_does_not_echo_a_huge_value(http: httpx.Client, demo: str, admin: dict[str, str]) -> None:
    value = "7x" * 200_000
    run = http.post(f"/api/apps/{demo}/runs", json={"inputs": {"color": value}})
    key = http.post("/api/keys", json={"name": "n" * 300_000}, headers=admin)
    slug = http.post("/api/apps", json={"name": "x", "slug": "N" * 300_000, "workflow": {}}, headers=admin)
    for response in (run, key, slug):
        assert response.status_code == 422 and len(response.content) < 2000, response.text[:300]
    assert "characters" in _detail_text(run)  # the value's start and its length, not the value


# --- defect 5: odd but well-formed requests get a 4xx --------------------------------------------------------

def test_huge_integers_in_paths_are_refused(http: httpx.Client, demo: str, admin: dict[str, str]) -> None:
    answers = [
        http.post(f"/api/apps/{demo}/versions/{HUGE}/runs", json={"inputs": {}}),  # anonymous, public app
        http.post(f"/api/apps/{demo}/versions/{HUGE}/run", json={"inputs": {}}),
        http.get(f"/api/apps/{demo}/versions/{HUGE}"),
        http.get(f"/api/apps/{demo}/deployments/{HUGE}", headers=admin),
        http.delete(f"/api/keys/{HUGE}", headers=admin),
        http.put(f"/api/apps/{demo}/runtime", json={"runtime": "modal", "deployment_id": HUGE}, headers=admin),
    ]
    for response in answers:
        assert response.status_code == 422, (response.request.url, response.text)
        assert "less than or equal" in _detail_text(response)


def test_analyze_needs_a_workflow_object(http: httpx.Client, admin: dict[str, str]) -> None:
    response = http.post("/api/workflows/analyze", json={"workflow": []}, headers=admin)
    assert response.status_code == 422 and "workflow" in _detail_text(response)


def test_a_deeply_nested_run_body_is_refused(http: httpx.Client, demo: str) -> None:
    for depth in (999, 5000):
        body = '{"inputs": {"color": ' + "[" * depth + "]" * depth + "}}"
        response = http.post(f"/api/apps/{demo}/runs", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, response.text[:300]
        assert "nested too deeply" in _detail_text(response)


def test_unwritable_uploads_folder_answers_503(server: AppServer, http: httpx.Client, photo_app: str) -> None:
    uploads = server.data_dir / "assets"  # where uploads are kept, once per content (app.runs.stored)
    moved = server.data_dir / "assets-aside"
    if uploads.exists():
        uploads.rename(moved)
    uploads.write_text("a file where the folder should be")  # unwritable even for root
    try:
        response = http.post(f"/api/apps/{photo_app}/runs", files={"photo": ("a.png", _png(), "image/png")})
    finally:
        uploads.unlink()
        if moved.exists():
            moved.rename(uploads)
    assert response.status_code == 503, response.text
    assert "cannot store uploads" in response.json()["detail"] and str(uploads) in response.json()["detail"]
    assert "cannot store the upload" in server.log_tail()  # the operator sees it too


# --- issue 11: multipart bodies -------------------------------------------------------------------------

def _multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "b0undary") -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def test_a_truncated_multipart_body_is_refused(http: httpx.Client, demo: str) -> None:
    body = _multipart([("color", None, b"5"), ("webhook", None, b"http://127.0.0.1:9/hook")])
    cut = body[: body.rindex(b"--b0undary--") - 10]  # the last field loses its end and the closing boundary
    response = http.post(f"/api/apps/{demo}/runs", content=cut,
                         headers={"Content-Type": "multipart/form-data; boundary=b0undary"})
    assert response.status_code == 400 and "truncated" in response.json()["detail"]


def test_a_too_long_file_name_is_named(http: httpx.Client, photo_app: str) -> None:
    body = _multipart([("photo", "p" * 5000 + ".png", _png())])
    response = http.post(f"/api/apps/{photo_app}/runs", content=body,
                         headers={"Content-Type": "multipart/form-data; boundary=b0undary"})
    assert response.status_code == 400 and "file name is too long" in response.json()["detail"]


# --- defect 8: one error shape, documented ---------------------------------------------------------------

def test_every_error_has_the_one_shape(http: httpx.Client, demo: str, admin: dict[str, str]) -> None:
    answers = [
        http.get("/api/no-such-thing"),  # Starlette's 404
        http.patch("/api/keys", headers=admin),  # 405
        http.get("/api/keys"),  # 401
        http.post("/api/keys", json={"name": ""}, headers=admin),  # request validation
        http.post(f"/api/apps/{demo}/runs", json={"inputs": {"color": "red"}}),  # input problems
    ]
    for response in answers:
        assert 400 <= response.status_code < 500
        detail = response.json()["detail"]
        assert isinstance(detail, str) or (isinstance(detail, dict) and isinstance(detail["message"], str)), detail


def test_openapi_documents_the_errors(http: httpx.Client, demo: str) -> None:
    schema = http.get("/openapi.json").json()
    assert schema["components"]["schemas"]["AnalyzeRequest"]["properties"]["workflow"]["type"] == "object"
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for code, answer in operation["responses"].items():
                if code.startswith("4"):
                    ref = answer["content"]["application/json"]["schema"]["$ref"]
                    # The Comfy API v2 answers in its own envelope (app/v2/errors.py).
                    shape = "/ErrorEnvelope" if path.startswith("/api/v2/") else "/ErrorOut"
                    assert ref.endswith(shape), (method, path, code)
    assert "413" in schema["paths"][f"/api/apps/{demo}/runs"]["post"]["responses"]


def test_deeply_nested_bodies_elsewhere_are_refused(http: httpx.Client, demo: str, admin: dict[str, str]) -> None:
    """Deep enough to parse: refused as what it is not (a workflow, a value); deeper: refused as too deep."""
    json_headers = {**admin, "Content-Type": "application/json"}
    for depth in (900, 5000):
        deep = "[" * depth + "]" * depth
        answers = [
            http.post("/api/workflows/analyze", content='{"workflow": {"1": ' + deep + "}}", headers=json_headers),
            http.post("/api/apps", content='{"name": "d", "workflow": {"1": ' + deep + "}}", headers=json_headers),
            http.post(f"/api/apps/{demo}/runs", files={"inputs": (None, '{"color": ' + deep + "}")}),
        ]
        for response in answers:
            assert 400 <= response.status_code < 500, (response.request.url, response.text[:300])
            assert depth < 1000 or "nested too deeply" in _detail_text(response), response.text[:300]


def test_an_unknown_input_is_named_by_its_start(http: httpx.Client, demo: str) -> None:
    answer = http.post(f"/api/apps/{demo}/runs", json={"inputs": {"x" * 200_000: 1}})
    assert answer.status_code == 422 and len(answer.content) < 2000, answer.text[:300]
    (problem,) = answer.json()["detail"]["problems"]
    assert problem["input"].endswith("... (200,000 characters)") and problem["message"] == "unknown input"


def test_an_out_of_range_number_is_not_echoed_whole(http: httpx.Client, demo: str) -> None:
    answer = http.post(f"/api/apps/{demo}/runs", json={"inputs": {"color": 10**400}})
    assert answer.status_code == 422
    assert len(answer.text) < 1000 and "above the maximum" in answer.text and "(401 characters)" in answer.text


def test_one_mistake_repeated_is_listed_a_bounded_number_of_times(http: httpx.Client, admin: dict[str, str]) -> None:
    inputs = [{"node": "1", "input": "color", "name": f"c{i}"} for i in range(5000)]
    answer = http.post("/api/apps", json={"name": "Many", "slug": "many", "workflow": shipped("demo_invert.json"),
                                          "inputs": inputs}, headers=admin)
    assert answer.status_code == 422
    problems = answer.json()["detail"]["problems"]
    assert len(problems) == 51 and problems[-1] == "... and 4949 more problems", problems[-3:]


def test_a_description_has_a_maximum_length(http: httpx.Client, admin: dict[str, str]) -> None:
    answer = http.post("/api/apps", json={"name": "Long", "slug": "long", "workflow": shipped("demo_invert.json"),
                                          "description": "d" * 10_001}, headers=admin)
    assert answer.status_code == 422 and "at most 10000 characters" in answer.text
