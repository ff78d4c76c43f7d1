"""RunPod's REST API v2 client against the loopback RunPod (tests/support/runpod_cloud.py): templates and endpoints
created, then updated by name, deleted; RunPod's errors turned into messages that say what to do, never with the
key in them; no key or no route fails within seconds, before any request."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from runtimes.runpod.host import api
from runtimes.runpod.host.api import RunPodApi, RunPodApiError, RunPodCredentialsError, RunPodUnreachableError
from tests.support.runpod_cloud import KEY, RunPodCloud

# What RunPodSettings.template_fields() / endpoint_fields() give (runtimes/runpod/host/settings.py, the contract).
TEMPLATE_FIELDS = {"disk": 30, "serverless": True, "startJupyter": False, "startSsh": False}
ENDPOINT_FIELDS = {"gpu": {"pools": ["AMPERE_24", "ADA_24"], "count": 1},
                   "workers": {"min": 0, "max": 3, "idleTimeout": 5},
                   "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4}, "timeout": 600_000, "flashboot": "FLASHBOOT"}


@pytest.fixture(scope="module")
def cloud() -> Iterator[RunPodCloud]:
    with RunPodCloud() as served:
        yield served


@pytest.fixture
async def runpod(cloud: RunPodCloud) -> AsyncIterator[RunPodApi]:
    async with RunPodApi(KEY, rest_url=cloud.rest_url) as client:
        yield client


def _closed_port() -> int:
    with socket.socket() as sock:  # bound then closed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_ensure_creates_then_updates_by_name_and_rolls_the_new_image(runpod: RunPodApi,
                                                                           cloud: RunPodCloud) -> None:
    name = "comfy-publisher-roll"
    first = await runpod.ensure_template(name, "me/app:v1", {"APP": "1"}, TEMPLATE_FIELDS)
    endpoint = await runpod.ensure_endpoint(name, first["id"], {**ENDPOINT_FIELDS, "dataCenterIds": ["EU-RO-1"]})
    assert endpoint["type"] == "QUEUE" and endpoint["image"] == "me/app:v1" and endpoint["env"] == {"APP": "1"}
    assert endpoint["gpu"]["pools"] == ["AMPERE_24", "ADA_24"] and endpoint["flashboot"] == "FLASHBOOT"

    second = await runpod.ensure_template(name, "me/app:v2", {"APP": "2"}, TEMPLATE_FIELDS)
    again = await runpod.ensure_endpoint(name, second["id"], {**ENDPOINT_FIELDS, "workers": {
        "min": 1, "max": 5, "idleTimeout": 60}})
    assert second["id"] == first["id"] and again["id"] == endpoint["id"]  # updated, not duplicated
    assert [t["name"] for t in await runpod.list_templates()].count(name) == 1
    assert [e["name"] for e in await runpod.list_endpoints()].count(name) == 1
    assert again["image"] == "me/app:v2" and again["env"] == {"APP": "2"}  # the template applied again
    assert again["workers"] == {"min": 1, "max": 5, "idleTimeout": 60}
    assert again["dataCenterIds"] == []  # no longer asked for: cleared, not kept
    patch = cloud.bodies("PATCH", f"/v2/serverless/{endpoint['id']}")[-1]
    assert "type" not in patch and patch["templateId"] == first["id"]
    found = await runpod.find_endpoint(name)
    assert found is not None and found["id"] == endpoint["id"]
    assert (await runpod.find_template("comfy-publisher-none")) is None


async def test_delete_endpoint_then_its_template(runpod: RunPodApi) -> None:
    name = "comfy-publisher-gone"
    template = await runpod.ensure_template(name, "me/app:v1", {}, TEMPLATE_FIELDS)
    endpoint = await runpod.ensure_endpoint(name, template["id"], ENDPOINT_FIELDS)
    with pytest.raises(RunPodApiError) as in_use:  # RunPod keeps a template its endpoint was made from
        await runpod.delete_template(template["id"])
    assert in_use.value.status == 400 and "in use" in str(in_use.value)
    await runpod.delete_endpoint(endpoint["id"])
    await runpod.delete_template(template["id"])
    assert await runpod.find_endpoint(name) is None and await runpod.find_template(name) is None
    with pytest.raises(RunPodApiError, match="deleted in the console") as missing:
        await runpod.delete_endpoint(endpoint["id"])
    assert missing.value.status == 404


async def test_field_errors_are_each_named(runpod: RunPodApi) -> None:
    template = await runpod.ensure_template("comfy-publisher-bad", "me/app:v1", {}, TEMPLATE_FIELDS)
    bad = {**ENDPOINT_FIELDS, "gpu": {"pools": []}, "workers": {"min": 0, "max": 3, "idleTimeout": 0},
           "gpuTypeIds": ["NVIDIA L4"]}
    with pytest.raises(RunPodApiError) as raised:
        await runpod.ensure_endpoint("comfy-publisher-bad", template["id"], bad)
    message = str(raised.value)
    assert raised.value.status == 422 and "create the endpoint 'comfy-publisher-bad'" in message
    for field_error in ("$.gpu.pools: minimum 1 items required", "$.workers.idleTimeout: must be >= 1",
                        "$: additional properties 'gpuTypeIds' not allowed"):
        assert f"  - {field_error}" in message
    assert "check the deploy settings" in message
    assert len(raised.value.errors) == 3


async def test_rate_limit_says_how_long_to_wait(runpod: RunPodApi, cloud: RunPodCloud) -> None:
    cloud.fail_next = (429, {"Retry-After": "12"})
    with pytest.raises(api.RunPodRateLimitedError, match="wait 12 s") as raised:
        await runpod.list_endpoints()
    assert raised.value.retry_after == 12


async def test_a_wrong_key_is_refused_without_showing_it(cloud: RunPodCloud) -> None:
    wrong = "rpa_WRONG" + "Z" * 32
    async with RunPodApi(wrong, rest_url=cloud.rest_url) as client:
        assert wrong not in repr(client)
        with pytest.raises(RunPodCredentialsError) as raised:
            await client.ensure_template("comfy-publisher-x", "me/app:v1", {}, TEMPLATE_FIELDS)
    message = str(raised.value)
    assert "RunPod refused RUNPOD_API_KEY while trying to list your templates (401" in message
    assert "Settings → API Keys" in message and wrong not in message and wrong not in repr(raised.value)
    assert cloud.requests[-1].authorized is False


async def test_no_key_fails_at_once_without_a_request(cloud: RunPodCloud) -> None:
    seen = len(cloud.requests)
    began = time.monotonic()
    with pytest.raises(RunPodCredentialsError, match="set it as RUNPOD_API_KEY in the environment of the app"):
        await api.preflight("", url=cloud.rest_url)
    with pytest.raises(RunPodCredentialsError):
        RunPodApi("", rest_url=cloud.rest_url)
    assert time.monotonic() - began < 1 and len(cloud.requests) == seen
    await api.preflight(KEY, url=cloud.rest_url)  # a key and a route: passes


async def test_no_route_fails_within_seconds_and_says_where(monkeypatch: pytest.MonkeyPatch) -> None:
    closed = f"http://127.0.0.1:{_closed_port()}/v2"
    monkeypatch.setenv("RUNPOD_REST_URL", closed)
    began = time.monotonic()
    with pytest.raises(RunPodUnreachableError) as raised:
        await api.preflight(KEY)
    assert closed in str(raised.value) and "network" in str(raised.value) and KEY not in str(raised.value)
    async with RunPodApi(KEY) as client:  # the URL from the environment
        with pytest.raises(RunPodUnreachableError, match="to list your serverless endpoints"):
            await client.find_endpoint("comfy-publisher-x")
    assert time.monotonic() - began < api.CONNECT_TIMEOUT_S + 1


def test_job_url_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNPOD_ENDPOINT_BASE_URL", raising=False)
    assert api.job_url("ab12cd34") == "https://api.runpod.ai/v2/ab12cd34"
    monkeypatch.setenv("RUNPOD_ENDPOINT_BASE_URL", "http://127.0.0.1:9/v2/")
    assert api.job_url("ab12cd34") == "http://127.0.0.1:9/v2/ab12cd34"


async def test_a_secret_is_created_then_rotated_by_name_and_only_its_reference_comes_back(
        runpod: RunPodApi, cloud: RunPodCloud) -> None:
    reference = await runpod.ensure_secret("comfy-publisher-hf-token", "hf_first")
    assert reference == "{{ RUNPOD_SECRET_comfy-publisher-hf-token }}"
    assert await runpod.ensure_secret("comfy-publisher-hf-token", "hf_second") == reference
    (stored,) = [s for s in cloud.secrets.values() if s["name"] == "comfy-publisher-hf-token"]
    assert stored["value"] == "hf_second"  # rotated in place
    assert all("value" not in s for s in await runpod.list_secrets())  # write-only, as RunPod's
    with pytest.raises(RunPodApiError) as refused:  # RunPod's own rules for names, said back
        await runpod.ensure_secret("RUNPOD_MINE", "x")
    assert "could not create the secret 'RUNPOD_MINE'" in str(refused.value) and "reserved" in str(refused.value)
