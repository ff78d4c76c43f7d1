"""The run service: the one entry point for running an app version (the REST API, the forms and the studio all
submit here), and what a run's followers ask of it (wait, cancel, its view, its queue position).

A run is persisted before it is handed to a runner (`runtimes.contract.Runner`): the local worker pool, or the
deployment serving the app's version. The service never asks which kind it is: `route` names the runner of a
version (None: the local pool), and the runner that took a run also cancels it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session, sessionmaker

from app.auth.keys import Caller
from app.runs.deliveries import RunWebhooks
from app.runs.events import RunEvents
from app.runs.inflight import InFlightRuns
from app.runs.model_check import ModelFiles
from app.runs.recorder import RunRecorder
from app.runs.recovery import Recovery
from app.runs.stored import request_for
from app.runs.submission import Accepted, AppRef, Recording, Submission, authorize
from app.runs.versions import Versions
from app.runs.views import RunOut, run_view
from app.settings import Settings
from db.crud_apps import RunnableVersion
from db.crud_runs import NewArtifact
from db.models import Artifact, Run
from publisher import AppSpec
from runtimes.contract import CancelOutcome, QueueFullError, Runner, RunRequest, RunStatus, cancelled_error

Route = Callable[[RunnableVersion], Runner | None]


class RunService:
    def __init__(self, *, settings: Settings, sessions: sessionmaker[Session], versions: Versions,
                 in_flight: InFlightRuns, events: RunEvents, recorder: RunRecorder, webhooks: RunWebhooks,
                 local: Runner, route: Route, engine_problem: Callable[[], str | None],
                 model_files: ModelFiles | None = None, on_submit: Callable[[str], None] = lambda slug: None) -> None:
        self.settings = settings
        self.sessions = sessions
        self.versions = versions
        self.in_flight = in_flight
        self.events = events
        self.recorder = recorder
        self.webhooks = webhooks
        self.local = local  # where runs go unless `route` names another runner
        self.route = route
        self.engine_problem = engine_problem  # why no engine can run anything (they failed to start), or None
        self.model_files = model_files  # checks a local run's model files before it is recorded
        self.on_submit = on_submit  # told the app of each run accepted (app.metrics)
        self.recording = Recording(settings=settings, versions=versions, check_run=self._check_models)
        self.recovery = Recovery(sessions=sessions, versions=versions, uploads_dir=settings.uploads_dir)
        self._reserved = 0  # submissions between the queue check and the runner

    # --- submission ---------------------------------------------------------------------------------

    async def submit(self, sub: Submission) -> Accepted:
        """Check, persist, then hand the run to its runner. A repeated Idempotency-Key answers the first run."""
        # Reserve a place before the DB write (other submissions run meanwhile): a runner then never refuses a
        # run that is already recorded.
        if self.local.queued_count() + self._reserved >= self.settings.max_queue:
            raise QueueFullError(f"The queue is full ({self.settings.max_queue} runs); retry later.",
                                 max(1.0, min(60.0, self.local.queued_count() / 50)))
        self._reserved += 1
        try:
            accepted = await asyncio.to_thread(self._record, sub)
            if accepted.created:
                run = accepted.run
                request = request_for(run, accepted.spec, self.settings.uploads_dir)
                if sub.extra_data:
                    request = replace(request, extra_data=dict(sub.extra_data))
                self._dispatch(request, accepted.version, run.created_at, api_key_id=run.api_key_id)
                self.on_submit(accepted.version.slug)
        finally:
            self._reserved -= 1
        return accepted

    def _check_models(self, version: RunnableVersion, spec: AppSpec, values: dict[str, Any]) -> None:
        # A deployment's models are on its own Volume: only runs on the local engines are checked here.
        if self.model_files is not None and self.route(version) is None:
            self.model_files.check(spec, values, version.slug)

    def _record(self, sub: Submission) -> Accepted:
        with self.sessions() as session:
            return self.recording.record(session, sub, self.engine_problem())

    async def authorize(self, app: AppRef, authorization: str | None) -> tuple[Caller, RunnableVersion]:
        """The caller and the version, before a request's files are read (a multipart submission): the same checks
        as `submit`'s, in a trip of their own."""
        def check(session: Session) -> tuple[Caller, RunnableVersion]:
            return authorize(session, app, None, authorization, self.engine_problem())

        return await asyncio.to_thread(self._in_session, check)

    def _in_session(self, work: Callable[[Session], Any]) -> Any:
        with self.sessions() as session:
            return work(session)

    def _dispatch(self, request: RunRequest, version: RunnableVersion | None, created_at: datetime,
                  earlier_losses: tuple[str, ...] = (), *, api_key_id: int | None = None) -> None:
        runner = (self.route(version) if version is not None else None) or self.local
        runner.submit(request, earlier_losses=earlier_losses)
        self.in_flight.add(request.run_id, created_at, runner, api_key_id=api_key_id,
                           slug=version.slug if version is not None else None, nodes=len(request.workflow))

    def accepted_view(self, accepted: Accepted) -> RunOut | None:
        """A run just created, as the API shows it, known without reading it back (queued, no outputs yet); None
        for an earlier run (read it)."""
        if not accepted.created:
            return None
        return RunOut.of(accepted.run, slug=accepted.version.slug, version=accepted.version.number, artifacts=[],
                         queue_position=self.position(accepted.run.id))

    # --- following a run ----------------------------------------------------------------------------

    def position(self, run_id: str) -> int | None:
        in_flight = self.in_flight.get(run_id)
        return in_flight.runner.position(run_id) if in_flight is not None else None

    def view(self, session: Session, run: Run | Row[Any],
             artifacts: list[Artifact | NewArtifact | Row[Any]] | None = None) -> RunOut:
        """The run as the API shows it, with its queue position and, while it runs here, its latest progress."""
        out = run_view(session, self.versions, run, artifacts,
                       queue_position=self.position(run.id) if run.status == RunStatus.QUEUED else None)
        in_flight = self.in_flight.get(run.id)
        if in_flight is not None and in_flight.progress is not None and run.status == RunStatus.RUNNING:
            out.progress = in_flight.progress
        return out

    def is_in_flight(self, run_id: str) -> bool:
        """Whether this process is running it (queued or running, not ended)."""
        return run_id in self.in_flight

    async def wait(self, run_id: str, timeout: float) -> RunOut | None:
        """The run as its end was recorded, within `timeout` seconds; None: still going, or not in flight here."""
        return await self.in_flight.wait(run_id, timeout)

    def subscribe(self, run_id: str) -> asyncio.Queue[dict[str, Any]]:
        return self.events.subscribe(run_id)

    def unsubscribe(self, run_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self.events.unsubscribe(run_id, queue)

    async def cancel(self, run_id: str) -> CancelOutcome:
        in_flight = self.in_flight.get(run_id)
        outcome = await in_flight.runner.cancel(run_id) if in_flight is not None else "not_found"
        if outcome == "not_found":
            # Not with a runner: either finishing right now (its own end stands) or queued in the DB only.
            await self.recorder.finish(run_id, RunStatus.CANCELLED, error=cancelled_error(),
                                       only_from=frozenset({RunStatus.QUEUED.value}))
        return outcome

    def queued_count(self) -> int:
        return self.local.queued_count()

    def running_count(self) -> int:
        return len(self.local.running())

    def app_slug(self, session: Session, app_id: int) -> str:
        return self.versions.slug(session, app_id)

    def webhook_secret(self, slug: str) -> str:
        return self.webhooks.secret_of(slug)

    # --- restart -------------------------------------------------------------------------------------

    async def recover(self) -> dict[str, int]:
        """Queue again what a previous process left behind (app.runs.recovery), and send the webhooks it did not
        deliver."""
        for final, url in await asyncio.to_thread(self.recovery.webhooks_due):
            self.webhooks.send(final, url)
        leftovers = await asyncio.to_thread(self.recovery.leftovers)
        refused: list[tuple[str, Exception]] = []
        for run in leftovers.runs:
            try:
                self._dispatch(run.request, run.version, run.created_at, run.earlier_losses)
            except Exception as exc:  # a broken record; never the queue's cap: accepted runs are not refused
                refused.append((run.request.run_id, exc))
        counts = leftovers.counts
        if refused:
            await asyncio.to_thread(self.recovery.fail, refused)
            counts["failed"] += len(refused)
            counts["requeued"] -= len(refused)  # re-runs come first: the ones refused were queued ones
        return counts

    def requeue_interrupted(self, run_ids: list[str]) -> None:
        self.recovery.requeue_interrupted(run_ids)


