"""The API against its own OpenAPI document: schemathesis generates requests for every documented operation of the
real app (the real engine, one public and one private app published), sends each with an admin key and with no
key, and checks the answers: no server error, every status code documented, every body and content type as
documented. Bounded (a few examples per operation) so it stays a test, not a soak.

Each operation is driven through its hypothesis strategy here, in one test: schemathesis' own pytest integration
(`schemathesis.pytest.from_fixture`) fails on pytest 9 (it sets `Function._nodeid`, which pytest 9 no longer has)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.prompts import shipped
from tests.support.server import AppServer

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 15  # per operation and generation mode (valid requests, then requests that break the schema)
BOUNDED = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                   suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine_url: str) -> Iterator[AppServer]:
    # A short --sync-wait: the sync run endpoints answer 202 soon instead of waiting for the queue.
    app = AppServer(tmp_path_factory.mktemp("schemathesis"), comfyui_url=engine_url,
                    extra=("--sync-wait", "1")).start()
    yield app
    app.stop()


@pytest.fixture(scope="module")
def published(http: httpx.Client, admin: dict[str, str]) -> list[str]:
    slugs = []
    for slug, public in (("open-demo", True), ("closed-demo", False)):
        response = http.post("/api/apps", headers=admin, json={
            "name": slug, "slug": slug, "public": public, "workflow": shipped("demo_invert.json"),
            "inputs": [{"node": "1", "input": "color", "name": "color"},
                       {"node": "1", "input": "width", "name": "size", "max": 64}]})
        assert response.status_code == 201, response.text
        slugs.append(slug)
    # A public app with file inputs: its document has a multipart body too (binary parts, base64 in JSON).
    response = http.post("/api/apps", headers=admin, json={
        "name": "open-media", "slug": "open-media", "public": True,
        "workflow": {"1": {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}},
                     "2": {"class_type": "SaveVideo", "inputs": {"video": ["1", 0], "filename_prefix": "v",
                                                                 "format": "auto", "codec": "auto"}},
                     "3": {"class_type": "LoadAudio", "inputs": {"audio": "voice.wav"}},
                     "4": {"class_type": "SaveAudio", "inputs": {"audio": ["3", 0], "filename_prefix": "a"}}},
        "inputs": [{"node": "1", "input": "file", "name": "clip"}, {"node": "3", "input": "audio", "name": "voice"}]})
    assert response.status_code == 201, response.text
    return slugs


def exercise_operations(base_url: str, labels: list[str], admin: dict[str, str], admin_key_id: int) -> list[str]:
    """Each operation of `labels` driven in both generation modes, with and without the admin key: what failed.
    Module-level so a spawned process can run it on its share of the operations."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    failures: list[str] = []
    for operation in [result.ok() for result in schema.get_all_operations()]:
        if operation.label not in labels:
            continue
        for mode in schemathesis.GenerationMode:

            @BOUNDED
            @given(case=operation.as_strategy(generation_mode=mode))
            def exercise(case: schemathesis.Case) -> None:
                if case.path_parameters and case.path_parameters.get("key_id") == admin_key_id:
                    case.path_parameters["key_id"] = admin_key_id + 1000  # keep the key this test runs with
                for headers in (admin, {}):
                    case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=30)

            try:
                exercise()
            except Unsatisfiable:  # nothing of this operation can break its schema (no parameter, free strings)
                continue
            except (Exception, BaseExceptionGroup) as exc:  # every operation is tried; failures reported together
                failures.append(f"{operation.label} ({mode}): {str(exc)[:1500]}")
    return failures


def test_the_api_keeps_its_document(server: AppServer, http: httpx.Client, admin: dict[str, str],
                                    published: list[str]) -> None:
    admin_key_id = int(http.get("/api/keys", headers=admin).json()[0]["id"])
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert any(op.path == f"/api/apps/{published[0]}/runs" for op in operations)  # the public app's typed section
    media = next(op for op in operations if op.path == "/api/apps/open-media/runs")
    assert {body.media_type for body in media.body} == {"application/json", "multipart/form-data"}

    # Generating the cases is most of the time (hypothesis, in this process, not the app): a spawned process takes
    # every other operation while this one drives the rest, so both cores generate.
    labels = [operation.label for operation in operations]
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        theirs = pool.submit(exercise_operations, server.url, labels[1::2], admin, admin_key_id)
        failures = exercise_operations(server.url, labels[0::2], admin, admin_key_id) + theirs.result()
    assert not failures, "\n\n".join(failures)
