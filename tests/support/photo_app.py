"""A published app with one image input (LoadImage -> ImageInvert -> SaveImage), run through the typed API: the
tests of stored uploads (dedupe, retention) share it."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.app.test_api import wait_final

PHOTO_WORKFLOW = {"1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}},
                  "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
                  "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "photo"}}}


def publish_photo_app(http: httpx.Client, admin: dict[str, str], name: str = "Photo invert") -> str:
    """A new app (its own slug) whose input `photo` is the image LoadImage reads."""
    response = http.post("/api/apps", headers=admin, json={
        "name": name, "slug": f"photo-{uuid.uuid4().hex[:6]}", "workflow": PHOTO_WORKFLOW,
        "inputs": [{"node": "1", "input": "image", "name": "photo", "required": True}]})
    assert response.status_code == 201, response.text
    return str(response.json()["slug"])


def run_photo(http: httpx.Client, slug: str, headers: dict[str, str], data: bytes,
              filename: str = "p.png") -> dict[str, Any]:
    """A run of it with this image as a multipart file, waited for: it must succeed."""
    response = http.post(f"/api/apps/{slug}/runs", headers=headers, files={"photo": (filename, data, "image/png")})
    assert response.status_code == 202, response.text
    run = wait_final(http, response.json()["id"], headers)
    assert run["status"] == "succeeded", run
    return run
