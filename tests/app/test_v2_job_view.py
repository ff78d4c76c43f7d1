"""A run's words as the Comfy API v2's (app.v2.job_view), checked against comfy-sdk's generated models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from comfy_low.models import JobError, Progress

from app.v2.job_view import FOREVER, error_of, expires_at, progress_of, status_of

CREATED = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def run(status: str, **fields: Any) -> SimpleNamespace:
    return SimpleNamespace(**{"id": "r1", "status": status, "created_at": CREATED, "progress": None, "error": None,
                              **fields})


def test_statuses_map_to_the_contracts_words() -> None:
    assert status_of("queued", False) == "queued" and status_of("running", False) == "running"
    assert status_of("cancelled", False) == "canceled" and status_of("timed_out", False) == "failed"
    assert status_of("running", True) == "canceling" and status_of("queued", True) == "canceling"
    assert status_of("succeeded", True) == "succeeded"  # a cancel that came too late changes nothing


def test_a_timed_out_run_fails_with_its_own_code() -> None:
    error = error_of(run("timed_out", error={"type": "timeout", "message": "ran past 600 s", "node_id": "3",
                                             "node_type": "KSampler"}))
    assert error is not None and JobError.model_validate(error).code == "timeout"
    failed = error_of(run("failed", error={"type": "node_error", "message": "boom", "node_id": "2",
                                           "node_type": "ImageInvert"}))
    assert failed == {"code": "node_error", "message": "boom", "node_id": "2", "class_type": "ImageInvert",
                      "traceback": None}
    assert error_of(run("cancelled", error={"type": "cancelled", "message": "by request"})) is None


def test_progress_is_a_complete_snapshot() -> None:
    assert progress_of(run("queued"), 3, None) is None
    running = Progress.model_validate(progress_of(run("running"), 3, {"node": "5", "value": 5, "max": 20}))
    assert running.value == 0.25 and running.step == 5 and running.steps == 20 and running.current_node == "5"
    done = Progress.model_validate(progress_of(run("succeeded"), 3, None))
    assert done.value == 1 and done.nodes_done == done.nodes_total == 3


def test_retention_sets_the_expiry() -> None:
    assert expires_at(CREATED, 7) == CREATED + timedelta(days=7)
    assert expires_at(CREATED, None) == FOREVER
