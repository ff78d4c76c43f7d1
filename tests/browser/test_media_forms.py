"""Video and audio inputs through a generated form in a real browser (headless chromium), run on the real engine:
the file is chosen in the form's upload component, the run's outputs come back in the page. Screenshots land in
each test's tmp folder: look at them."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from runtimes.engine.install import EngineInstall
from tests.support.media import FRAME_COLOURS, mp4_bytes, wav_bytes
from tests.support.server import AppServer

pytest.importorskip("playwright")
from tests.support.browser import CHROMIUM, chromium

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs /usr/bin/chromium (make test installs it)")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine_url: str) -> Iterator[AppServer]:
    app = AppServer(tmp_path_factory.mktemp("media-ui"), comfyui_url=engine_url).start()
    yield app
    app.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as context:
        yield context


def _publish(http: httpx.Client, admin: dict[str, str], workflow: dict[str, Any], inputs: list[dict[str, Any]],
             ) -> str:
    slug = f"media-{uuid.uuid4().hex[:6]}"
    response = http.post("/api/apps", headers=admin, json={"name": slug, "slug": slug, "public": True,
                                                           "workflow": workflow, "inputs": inputs})
    assert response.status_code == 201, response.text
    return slug


def _outputs(http: httpx.Client, admin: dict[str, str], slug: str) -> list[dict[str, Any]]:
    (run,) = http.get(f"/api/runs?app={slug}", headers=admin).json()["runs"]
    assert run["status"] == "succeeded", run
    return list(http.get(f"/api/runs/{run['id']}", headers=admin).json()["outputs"])


def test_a_video_chosen_in_the_form_runs_on_loadvideo(server: AppServer, http: httpx.Client, admin: dict[str, str],
                                                      browser: Any, tmp_path: Path,
                                                      engine_install: EngineInstall) -> None:
    workflow = {"1": {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}},
                "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
                "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "frames"}}}
    slug = _publish(http, admin, workflow, [{"node": "1", "input": "file", "name": "clip", "required": True}])
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(mp4_bytes(engine_install.python, tmp_path, size=64))
    page = browser.new_page()
    page.goto(f"{server.url}/apps/{slug}/")
    page.set_input_files("#input-clip input[type=file]", str(clip))
    page.wait_for_selector("#input-clip video", timeout=30_000)  # the upload component plays it back
    page.click("#run-button")
    page.wait_for_selector("#run-status :text('Done')", timeout=60_000)
    page.wait_for_selector("#outputs img", timeout=10_000)
    page.screenshot(path=str(tmp_path / "form-video-done.png"), full_page=True)
    frames = [o for o in _outputs(http, admin, slug) if o["node"] == "3"]
    assert len(frames) == 2 * len(FRAME_COLOURS)


def test_a_sound_chosen_in_the_form_runs_on_loadaudio(server: AppServer, http: httpx.Client, admin: dict[str, str],
                                                      browser: Any, tmp_path: Path) -> None:
    workflow = {"1": {"class_type": "LoadAudio", "inputs": {"audio": "voice.wav"}},
                "2": {"class_type": "SaveAudio", "inputs": {"audio": ["1", 0], "filename_prefix": "sound"}}}
    slug = _publish(http, admin, workflow, [{"node": "1", "input": "audio", "name": "voice", "required": True}])
    voice = tmp_path / "voice.wav"
    voice.write_bytes(wav_bytes(seconds=1.0))
    page = browser.new_page()
    page.goto(f"{server.url}/apps/{slug}/")
    page.set_input_files("#input-voice input[type=file]", str(voice))
    page.wait_for_selector("#input-voice audio, #input-voice #waveform", state="attached", timeout=30_000)
    page.click("#run-button")
    page.wait_for_selector("#run-status :text('Done')", timeout=60_000)
    page.wait_for_selector("#audio-output audio, #audio-output #waveform", state="attached", timeout=10_000)
    page.screenshot(path=str(tmp_path / "form-audio-done.png"), full_page=True)
    (sound,) = _outputs(http, admin, slug)
    assert sound["kind"] == "audio" and sound["mime"] == "audio/flac"


def test_a_mask_painted_in_the_forms_mask_editor_reaches_loadimagemask(
        server: AppServer, http: httpx.Client, admin: dict[str, str], browser: Any, tmp_path: Path) -> None:
    workflow = {"1": {"class_type": "LoadImageMask", "inputs": {"image": "mask.png", "channel": "alpha"}},
                "2": {"class_type": "MaskToImage", "inputs": {"mask": ["1", 0]}},
                "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "mask"}}}
    slug = _publish(http, admin, workflow, [{"node": "1", "input": "image", "name": "mask", "required": True}])
    photo = tmp_path / "photo.png"
    Image.new("RGB", (200, 200), (90, 120, 200)).save(photo)
    page = browser.new_page()
    page.goto(f"{server.url}/apps/{slug}/")
    # The editor takes a file only once it is mounted (its canvas drawn): a file set before is lost.
    page.wait_for_selector("#input-mask canvas", timeout=30_000)
    page.set_input_files("#input-mask input[type=file]", str(photo))
    # The editor's canvas is there before the upload: wait until it shows the image (its placeholder gone), which
    # on a loaded machine can take longer than any fixed pause.
    page.wait_for_selector("#input-mask :text('Upload an image')", state="hidden", timeout=30_000)
    page.wait_for_timeout(1500)  # the editor draws the image in, then takes strokes
    box = page.locator("#input-mask canvas").first.bounding_box()
    assert box is not None
    middle_x, middle_y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(middle_x - 60, middle_y)
    page.mouse.down()
    page.mouse.move(middle_x + 60, middle_y, steps=20)  # a stroke across the middle of the image
    page.mouse.up()
    page.screenshot(path=str(tmp_path / "form-mask-painted.png"), full_page=True)
    page.click("#run-button")
    page.wait_for_selector("#run-status :text('Done')", timeout=60_000)
    page.screenshot(path=str(tmp_path / "form-mask-done.png"), full_page=True)
    (output,) = _outputs(http, admin, slug)
    with Image.open(io.BytesIO(http.get(output["url"]).content)) as result:
        grey = result.convert("L")
        width, height = grey.size
        assert grey.getpixel((width // 2, height // 2)) == 255  # painted: masked
        assert grey.getpixel((width // 2, height // 10)) == 0 and grey.getpixel((width // 20, height // 2)) == 0
