"""Operations that went wrong on a real app: a restart with a smaller queue, a password guessed over HTTP, private
workflow details in output files."""

from __future__ import annotations

import io
import time
import uuid
from pathlib import Path

import httpx
from PIL import Image

from tests.app.test_api import publish, wait_final
from tests.app.test_service_lifecycle import _publish_apps, _wait_status
from tests.support.prompts import shipped
from tests.support.server import AppServer


def test_a_restart_with_a_smaller_max_queue_still_runs_every_accepted_run(tmp_path: Path, engine_url: str,
                                                                          sd15_checkpoint: str) -> None:
    first = AppServer(tmp_path, comfyui_url=engine_url).start()
    admin = {"Authorization": f"Bearer {first.create_key('admin', admin=True)}"}
    with httpx.Client(base_url=first.url, trust_env=False, timeout=30) as http:
        slow, demo = _publish_apps(http, admin, sd15_checkpoint)
        # A long run holds the engine, so the next ones stay queued until the app is killed.
        blocker = http.post(f"/api/apps/{slow}/runs", json={"inputs": {"steps": 200, "width": 256,
                                                                        "height": 256}}).json()
        _wait_status(http, blocker["id"], "running")
        queued = [http.post(f"/api/apps/{demo}/runs", json={"inputs": {"color": c}}).json() for c in range(1, 6)]
        assert all(run["status"] == "queued" for run in queued)
    first.kill()
    with httpx.Client(base_url=engine_url, trust_env=False) as engine:
        engine.post("/queue", json={"clear": True})  # the killed app's prompt: not to hold the shared engine
        engine.post("/interrupt", json={})

    second = AppServer(tmp_path, comfyui_url=engine_url, extra=("--max-queue", "2")).start()
    try:
        with httpx.Client(base_url=second.url, trust_env=False, timeout=30) as http:
            http.post(f"/api/runs/{blocker['id']}/cancel")  # it is run again first; not needed here
            done = [wait_final(http, run["id"], {}, timeout=120) for run in queued]
    finally:
        second.stop()

    # 5 runs accepted before the restart, 2 allowed now: the cap is for new submissions, none of these fails.
    assert [run["status"] for run in done] == ["succeeded"] * 5, [run.get("error") for run in done]


def test_login_is_throttled_per_address_after_failed_attempts(tmp_path: Path, engine_url: str) -> None:
    server = AppServer(tmp_path, comfyui_url=engine_url, extra=("--auth", "owner:right-password")).start()
    try:
        with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as http:
            def login(password: str) -> httpx.Response:
                return http.post("/login", data={"user": "owner", "password": password, "next": "/studio/"})

            guesses = [login(f"guess-{i}") for i in range(8)]
            right_too_soon = login("right-password")
            time.sleep(int(right_too_soon.headers["retry-after"]))  # the lockout it announced
            right = login("right-password")
            after_success = login("one-more-guess")
    finally:
        server.stop()

    assert [r.status_code for r in guesses[:5]] == [401] * 5  # a few typos are free
    refused = guesses[5]
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert "Too many failed logins from this address; try again in" in refused.text
    assert all(r.status_code == 429 for r in guesses[5:])  # not even checked: no guess can get in meanwhile
    assert right_too_soon.status_code == 429  # the right password too, while the address is locked out
    assert right.status_code == 303 and "comfy_publisher_session" in right.cookies
    assert after_success.status_code == 401  # a success starts the count afresh


def test_private_outputs_lose_the_embedded_workflow_and_keep_their_pixels(shared_app: AppServer) -> None:
    admin = {"Authorization": f"Bearer {shared_app.create_key('admin', admin=True)}"}
    with httpx.Client(base_url=shared_app.url, trust_env=False, timeout=30) as http:
        def output_of(name: str, **settings: bool) -> Image.Image:
            slug = f"{name}-{uuid.uuid4().hex[:6]}"
            published = publish(http, admin, name=slug, slug=slug, workflow=shipped("demo_invert.json"),
                                inputs=[{"node": "1", "input": "color", "name": "color"}], **settings)
            assert published.status_code == 201, published.text
            run = http.post(f"/api/apps/{slug}/run", json={"inputs": {"color": 0x123456}}, headers=admin).json()
            assert run["status"] == "succeeded", run
            image = Image.open(io.BytesIO(http.get(run["outputs"][0]["url"]).content))
            image.load()
            return image

        private = output_of("private-app")
        public = output_of("public-app", public=True)
        kept = output_of("private-kept", keep_metadata=True)
        stripped_public = output_of("public-stripped", public=True, keep_metadata=False)

    assert "prompt" in public.text and "prompt" in kept.text  # what the engine wrote, where it is wanted
    assert private.text == {} and stripped_public.text == {}
    assert private.tobytes() == public.tobytes()  # the same pixels, bit for bit
