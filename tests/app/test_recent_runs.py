"""app.runs.inflight's memory of runs that ended lately: bounded in time, in count and in bytes, and each output
findable by its asset id."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from app.runs import inflight
from app.runs.inflight import EndedRecord, InFlightRuns
from db.crud_runs import NewArtifact


def ended(runs: InFlightRuns, run_id: str, *sizes: int, key: int | None = 7) -> None:
    """Run `run_id` through the memory: accepted, then ended with one output per size."""
    runs.add(run_id, datetime.now(UTC), runner=SimpleNamespace(), api_key_id=key, slug="demo", nodes=3)
    artifacts = [NewArtifact(node_id="9", kind="image", filename=f"{i:02d}.png", path=f"outputs/{run_id}/{i:02d}.png",
                             mime="image/png", size=size, asset_id=f"{run_id}-asset-{i}")
                 for i, size in enumerate(sizes)]
    final: Any = SimpleNamespace(id=run_id)
    runs.ended(run_id, final, EndedRecord(SimpleNamespace(id=run_id, status="succeeded"), artifacts,
                                          tuple(b"x" * size for size in sizes)))


def test_an_ended_run_and_its_outputs_are_found_with_who_may_read_them() -> None:
    runs = InFlightRuns()
    ended(runs, "a", 10, 20)
    assert "a" not in runs  # no longer in flight
    found = runs.recent("a")
    assert found is not None and (found.api_key_id, found.slug, found.nodes) == (7, "demo", 3)
    output = runs.recent_output("a-asset-1")
    assert output is not None and output[1] == 1 and output[0].data[1] == b"x" * 20
    assert runs.recent("b") is None and runs.recent_output("nope") is None


def test_memory_is_bounded_in_time_count_and_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inflight, "RECENT_RUNS", 3)
    monkeypatch.setattr(inflight, "RECENT_BYTES", 100)
    monkeypatch.setattr(inflight, "RECENT_FILE_BYTES", 60)
    runs = InFlightRuns()
    ended(runs, "big", 61)  # larger than a file kept: its record is kept, its bytes are not
    big = runs.recent("big")
    assert big is not None and big.data == (None,)
    for name in ("r1", "r2", "r3"):
        ended(runs, name, 10)
    assert runs.recent("big") is None and runs.recent_output("big-asset-0") is None  # the oldest, past the count
    ended(runs, "r4", 50, 40)  # 10 + 10 + 90 bytes: over the byte bound, the oldest go
    assert runs.recent("r1") is None and runs.recent("r2") is None and runs.recent("r4") is not None
    monkeypatch.setattr(inflight, "RECENT_S", -1.0)  # a minute later
    assert runs.recent("r4") is None and runs.recent_output("r4-asset-0") is None
