"""An app's measured execution time, for the planner: from its latest succeeded runs (the engine's own time per
run, as the runs recorded it)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from sqlalchemy.orm import Session

from db import crud_apps, crud_runs
from runtimes.contract import RunStatus
from runtimes.planner.autoscaler import nearest_rank

RECENT_RUNS = 50  # the latest runs tell the app as it is now (a new version, a warmer engine)


@dataclass(frozen=True)
class MeasuredExec:
    runs: int
    p50_s: float
    p95_s: float

    def describe(self) -> str:
        return (f"measured on this server: median {self.p50_s:.3g} s, p95 {self.p95_s:.3g} s over its last "
                f"{self.runs} succeeded run(s)")


def measured_exec(session: Session, *, slug: str, limit: int = RECENT_RUNS) -> MeasuredExec | None:
    """None when the app is unknown or has no succeeded run with an execution time yet."""
    app = crud_apps.get_app(session, slug=slug)
    if app is None:
        return None
    ordered = sorted(ms / 1000 for ms in crud_runs.recent_exec_ms(session, app_id=app.id,
                                                                   status=RunStatus.SUCCEEDED, limit=limit))
    if not ordered:
        return None
    return MeasuredExec(runs=len(ordered), p50_s=statistics.median(ordered), p95_s=nearest_rank(ordered, 0.95))
