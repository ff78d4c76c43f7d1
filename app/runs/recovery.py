"""What a previous process left behind, settled at start-up (in a worker thread).

Policy: runs found `queued` are queued again in their order; a run found `running` (the app died under it) is run
again once, ahead of the queue; if it was already on its second attempt, it is failed with that reason instead.
The engine's cache cannot serve a re-run stale outputs: each run writes under its own output folder. Webhooks the
previous process did not deliver are sent again. At a clean shutdown, runs cut short go back to `queued` without
using up an attempt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from app.runs.stored import request_for
from app.runs.versions import Versions
from app.runs.views import RunOut, run_view
from db import crud_apps, crud_runs
from db.crud_apps import RunnableVersion
from db.models import utcnow
from runtimes.contract import RunRequest, RunStatus, run_error

MAX_ATTEMPTS = 2


@dataclass(frozen=True)
class Recovered:
    """A run left behind, to queue again."""

    request: RunRequest
    created_at: datetime
    version: RunnableVersion | None
    earlier_losses: tuple[str, ...]  # its attempts that started and did not finish


@dataclass
class Leftovers:
    runs: list[Recovered] = field(default_factory=list)  # re-runs first, then the queue in its order
    counts: dict[str, int] = field(default_factory=lambda: {"requeued": 0, "rerun": 0, "failed": 0})



class Recovery:
    def __init__(self, *, sessions: sessionmaker[Session], versions: Versions, uploads_dir: Path) -> None:
        self.sessions = sessions
        self.versions = versions
        self.uploads_dir = uploads_dir

    def webhooks_due(self) -> list[tuple[RunOut, str]]:
        """Ended runs whose webhook was not delivered yet: (the run, its URL)."""
        with self.sessions() as session:
            return [(run_view(session, self.versions, run), run.webhook_url) for run in crud_runs.webhooks_due(session)
                    if run.webhook_url]

    def leftovers(self) -> Leftovers:
        """Settle the runs left `running`, and build the requests to queue again, in order."""
        found = Leftovers()
        failures: list[tuple[str, Exception]] = []
        with self.sessions() as session:
            interrupted = crud_runs.runs_with_status(session, status=RunStatus.RUNNING)
            for run in interrupted:
                if run.attempts >= MAX_ATTEMPTS:
                    crud_runs.finish_run(session, run_id=run.id, status=RunStatus.FAILED, finished_at=utcnow(),
                                         error=run_error("app_restarted", (
                                             f"The app stopped while this run was running (attempt {run.attempts} "
                                             f"of {MAX_ATTEMPTS}); it is not run again.")))
                    found.counts["failed"] += 1
                else:
                    crud_runs.requeue_run(session, run_id=run.id, status=RunStatus.QUEUED)
                    found.counts["rerun"] += 1
            # Re-runs first (they were started before anything still queued), then the queue in its order.
            rerun_ids = {run.id for run in interrupted if run.attempts < MAX_ATTEMPTS}
            queued = crud_runs.runs_with_status(session, status=RunStatus.QUEUED)
            for run in [r for r in queued if r.id in rerun_ids] + [r for r in queued if r.id not in rerun_ids]:
                try:
                    request = request_for(run, self.versions.spec(session, run.version_id), self.uploads_dir)
                    version = crud_apps.runnable_by_id(session, version_id=run.version_id)
                    # Attempts that started and did not finish (an engine lost, or this app stopped under them)
                    # count against the run's engine-loss limit after the restart too.
                    lost = tuple(f"attempt {i} did not finish (the engine or the app stopped before the app "
                                 f"restarted)" for i in range(1, run.attempts + 1))
                    found.runs.append(Recovered(request, run.created_at, version, lost))
                except Exception as exc:  # one broken record must not keep the app from starting
                    failures.append((run.id, exc))
                    continue
                if run.id not in rerun_ids:
                    found.counts["requeued"] += 1
        self.fail(failures)
        found.counts["failed"] += len(failures)
        return found

    def fail(self, failures: list[tuple[str, Exception]]) -> None:
        """Runs that could not be queued again: failed, saying why."""
        with self.sessions() as session:
            for run_id, exc in failures:
                crud_runs.finish_run(session, run_id=run_id, status=RunStatus.FAILED, finished_at=utcnow(),
                                     error=run_error("recovery_error", f"Could not queue this run again after a "
                                                                       f"restart: {type(exc).__name__}: {exc}"))

    def requeue_interrupted(self, run_ids: list[str]) -> None:
        """At a clean shutdown, runs cut short go back to `queued` without using up an attempt."""
        with self.sessions() as session:
            for run_id in run_ids:
                crud_runs.requeue_run(session, run_id=run_id, status=RunStatus.QUEUED, keep_attempts=False)


