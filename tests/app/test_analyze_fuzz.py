"""Malformed workflows posted to the real app: analyze and publish answer 2xx or a 422 that says what is wrong,
never a 5xx. A bounded, reproducible handful of the publisher fuzz tests' mutations (tests/publisher/mutations.py)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher import NodeCatalog
from tests.publisher.mutations import API_FIXTURES, FIXTURE_DATA, UI_FIXTURES, mutated_fixtures
from tests.support.server import AppServer


@pytest.fixture(scope="module")
def server(shared_app: AppServer) -> AppServer:
    return shared_app


@pytest.fixture(scope="module")
def catalog(object_info: dict[str, Any]) -> NodeCatalog:
    return NodeCatalog.from_object_info(object_info)


def post(http: httpx.Client, path: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    # Encoded here: httpx refuses NaN, and a client that sends it must still get a 4xx, not a 500.
    content = json.dumps(body).encode()
    return http.post(path, content=content, headers={**headers, "Content-Type": "application/json"})


def assert_answered(response: httpx.Response) -> None:
    """A 2xx, or a 4xx whose body says what is wrong."""
    assert response.status_code < 500, response.text[:2000]
    if response.status_code >= 400:
        detail = response.json()["detail"]
        if isinstance(detail, dict):
            detail = detail["message"]
        elif isinstance(detail, list):  # the request model's own errors
            detail = "; ".join(str(error["msg"]) for error in detail)
        assert isinstance(detail, str) and len(detail) > 10, response.text[:500]


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_mutated_workflows_get_an_answer_never_a_server_error(http: httpx.Client, admin: dict[str, str],
                                                              catalog: NodeCatalog, data: st.DataObject) -> None:
    workflow = data.draw(mutated_fixtures(UI_FIXTURES + API_FIXTURES, catalog))
    assert_answered(post(http, "/api/workflows/analyze", {"workflow": workflow}, admin))
    assert_answered(post(http, "/api/apps", {"name": "Fuzzed", "slug": "fuzzed", "workflow": workflow}, admin))


@pytest.mark.parametrize("bad", ["NaN", "Infinity"])
def test_a_number_json_cannot_carry_is_a_422_naming_the_input(http: httpx.Client, admin: dict[str, str],
                                                              bad: str) -> None:
    # Was: analyze answered 200 with the number silently turned into null in the candidate's default.
    workflow = json.dumps(FIXTURE_DATA["demo_invert.json"]).replace('"color": 16744448', f'"color": {bad}')
    assert f'"color": {bad}' in workflow
    for path, extra in (("/api/workflows/analyze", ""), ("/api/apps", ', "name": "Bad number"')):
        response = http.post(path, content=f'{{"workflow": {workflow}{extra}}}',
                             headers={**admin, "Content-Type": "application/json"})
        assert response.status_code == 422, response.text[:500]
        assert "Node '1' (EmptyImage): input 'color' holds" in json.dumps(response.json()["detail"])
