"""Deploying app versions to a serverless target (Modal, RunPod), for the REST routes, the studio and the CLI:
plan (validate + generate), preflight, deploy in the background with a streamed log, record every step, tear
down, and route runs to a deployment.

The life of a deployment is the same whatever the target, and lives here: nothing is recorded until the target's
preflight passed; then the record, the log (redacted of every secret, flushed to the database as it goes), live or
failed, a deploy cut short by a restart failed at the next start, teardown recorded as stopped, the runtime switch.
What differs per provider is a DeployTarget (app/deploy/modal_target.py, runpod_target.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.deploy.modal_target import ModalDeployTarget, endpoint_key_of
from app.deploy.runpod_target import RunPodDeployTarget
from app.deploy.target import DeployOptions, DeployTarget, Plan, redact
from app.errors import NotFound
from db import crud_apps, crud_deployments
from db.crud_apps import RunnableVersion
from db.models import Deployment, DeploymentStatus
from publisher import AppSpec
from runtimes.contract import Runner, UpdateCallback
from runtimes.planner.prices import PriceTable, in_force_or_builtin
from runtimes.serverless.errors import DeployError
from runtimes.serverless.settings import DeploySettingsError

__all__ = ["DeployOptions", "DeployPlanError", "DeploymentService", "Plan", "endpoint_key_of"]

log = logging.getLogger(__name__)
LOG_FLUSH_S = 0.5
DEFAULT_TARGET = "modal"


class DeployPlanError(NotFound):
    """No such app or version (the message says which)."""


class DeploymentService:
    def __init__(self, *, data_dir: Path, sessions: sessionmaker[Session], master_key: bytes,
                 on_update: UpdateCallback | None = None,
                 targets: Mapping[str, DeployTarget] | None = None) -> None:
        """`on_update`: where runs sent to deployments report (the server's; the command line runs none).
        `targets`: by provider name (default: Modal and RunPod)."""
        self.data_dir = data_dir
        self.sessions = sessions
        self._master = master_key
        self.targets: dict[str, DeployTarget] = dict(targets) if targets is not None else {
            "modal": ModalDeployTarget(master_key, on_update), "runpod": RunPodDeployTarget(data_dir, on_update)}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._listeners: dict[int, set[asyncio.Queue[str | None]]] = {}

    def target(self, name: str) -> DeployTarget:
        found = self.targets.get(name)
        if found is None:
            raise DeploySettingsError([f"target: unknown target {name!r}; choose one of {', '.join(self.targets)}"])
        return found

    def gpu_prices(self) -> PriceTable:
        """The GPU prices in force: the data dir's table, or the built-in one while that file is broken."""
        return in_force_or_builtin(self.data_dir)[0]

    def endpoint_key(self, slug: str) -> str:
        """The key of an app's Modal endpoint (load tests against a deployment send it)."""
        return endpoint_key_of(self._master, slug)

    def bundle_dir(self, slug: str, version: int, target: str = DEFAULT_TARGET) -> Path:
        suffix = "" if target == DEFAULT_TARGET else f"-{target}"  # Modal's folder keeps its name
        return self.data_dir / "deployments" / f"{slug}-v{version}{suffix}"

    # --- plan and deploy ---------------------------------------------------------------------------------

    def plan(self, slug: str, version: int | None, raw: Mapping[str, Any] | None, target: str = DEFAULT_TARGET,
             options: DeployOptions | None = None) -> Plan:
        """Validate the settings (DeploySettingsError) and generate the files; deploys nothing."""
        chosen = self.target(target)
        settings = chosen.settings(raw)
        with self.sessions() as session:
            app = crud_apps.get_app(session, slug=slug)
            if app is None:
                raise DeployPlanError(f"No app '{slug}'. GET /api/apps lists the apps.")
            found = crud_apps.get_version(session, app_id=app.id, number=version)
            if found is None:
                raise DeployPlanError(f"App '{slug}' has no version {version}.")
            session.expunge_all()
        prices = self.gpu_prices()
        bundle, app_name = chosen.generate(AppSpec.from_dict(found.spec), settings, slug=slug, version=found.number,
                                           title=app.name, prices=prices)
        return Plan(chosen.name, app, found, settings, bundle, prices, app_name, options or DeployOptions())

    def write_bundle(self, plan: Plan) -> Path:
        directory = self.bundle_dir(plan.app.slug, plan.version.number, plan.target)
        plan.bundle.write(directory)
        return directory

    async def start(self, plan: Plan) -> Deployment:
        """Check the options and preflight (fails within seconds, recording nothing), then record and deploy in
        the background."""
        target = self.target(plan.target)
        target.check(plan.options)
        directory = await asyncio.to_thread(self.write_bundle, plan)  # the files, also for building by hand
        await target.preflight(plan, directory)
        row = await asyncio.to_thread(self._record, plan)
        self._tasks[row.id] = asyncio.create_task(self._deploy(row.id, plan, directory), name=f"deploy-{row.id}")
        return row

    def recover(self) -> int:
        """At start-up (in a worker thread): deploys the last process was running never finished here."""
        hints = "; ".join(f"{t.label}: {t.recover_hint}" for t in self.targets.values())
        with self.sessions() as session:
            return crud_deployments.fail_unfinished(session, reason=(
                "The app stopped while this deploy was running; whether the provider finished it is unknown. "
                f"Deploy again ({hints})."))

    def _record(self, plan: Plan) -> Deployment:
        with self.sessions() as session:
            row = crud_deployments.create_deployment(
                session, app_id=plan.app.id, version_id=plan.version.id, provider=plan.target,
                settings=plan.settings.to_dict(), app_name=plan.app_name)
            session.expunge(row)
            return row

    async def wait(self, deployment_id: int) -> None:
        task = self._tasks.get(deployment_id)
        if task is not None:
            await asyncio.wait({task})

    async def _deploy(self, deployment_id: int, plan: Plan, directory: Path) -> None:
        target = self.target(plan.target)
        secrets = target.secrets()
        pending: list[str] = []
        last_flush = time.monotonic()

        async def note(line: str) -> None:
            nonlocal last_flush
            line = redact(line, secrets)
            pending.append(line)
            for queue in self._listeners.get(deployment_id, ()):
                queue.put_nowait(line)
            if time.monotonic() - last_flush >= LOG_FLUSH_S:
                await asyncio.to_thread(self._flush, deployment_id, pending)
                last_flush = time.monotonic()

        try:
            for warning in plan.bundle.warnings:
                await note(f"warning: model not downloaded: {warning}")
            url = (await target.deploy(plan, directory, note)).rstrip("/")
            await note(f"Live at {url}")
            await asyncio.to_thread(self._flush, deployment_id, pending)
            await asyncio.to_thread(self._went_live, deployment_id, plan, url)
        except Exception as exc:
            message = str(exc) if isinstance(exc, DeployError) else f"{type(exc).__name__}: {exc}"
            message = redact(message, secrets)
            await note(f"error: {message}")
            await asyncio.to_thread(self._flush, deployment_id, pending)
            await asyncio.to_thread(self._failed, deployment_id, message)
        finally:
            for queue in self._listeners.get(deployment_id, ()):
                queue.put_nowait(None)
            self._tasks.pop(deployment_id, None)

    def _went_live(self, deployment_id: int, plan: Plan, url: str) -> None:
        with self.sessions() as session:
            crud_deployments.finish_deployment(session, deployment_id=deployment_id,
                                               status=DeploymentStatus.LIVE.value, url=url)
            crud_deployments.superseded(session, app_id=plan.app.id, app_name=plan.app_name,
                                        keep_id=deployment_id, provider=plan.target)

    def _failed(self, deployment_id: int, message: str) -> None:
        with self.sessions() as session:
            crud_deployments.finish_deployment(session, deployment_id=deployment_id,
                                               status=DeploymentStatus.FAILED.value, error=message)

    def _flush(self, deployment_id: int, pending: list[str]) -> None:
        if pending:
            with self.sessions() as session:
                crud_deployments.append_log(session, deployment_id=deployment_id, lines=list(pending))
            pending.clear()

    def listen(self, deployment_id: int) -> asyncio.Queue[str | None]:
        """New log lines of a running deploy; None when it ends."""
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._listeners.setdefault(deployment_id, set()).add(queue)
        if deployment_id not in self._tasks:
            queue.put_nowait(None)
        return queue

    def unlisten(self, deployment_id: int, queue: asyncio.Queue[str | None]) -> None:
        self._listeners.get(deployment_id, set()).discard(queue)

    # --- teardown and routing ----------------------------------------------------------------------------

    async def teardown(self, slug: str, target: str = DEFAULT_TARGET) -> int:
        """Stop the app's deployment on the target; its deployments there are recorded as stopped and, if its
        runs went there, they go local again."""
        chosen = self.target(target)
        app_id = await asyncio.to_thread(self._app_id, slug)
        app_name = await chosen.teardown(slug)
        return await asyncio.to_thread(self._stopped, app_id, app_name, chosen.name)

    def _app_id(self, slug: str) -> int:
        with self.sessions() as session:
            app = crud_apps.get_app(session, slug=slug)
            if app is None:
                raise DeployPlanError(f"No app '{slug}'.")
            return app.id

    def _stopped(self, app_id: int, app_name: str, provider: str) -> int:
        with self.sessions() as session:
            return crud_deployments.mark_stopped(session, app_id=app_id, app_name=app_name, provider=provider)

    def set_runtime(self, slug: str, runtime: str, deployment_id: int | None = None) -> Deployment | None:
        """Route the app's runs: "local", or a target's name (its live deployment `deployment_id`, default the
        newest)."""
        if runtime != "local":
            self.target(runtime)
        with self.sessions() as session:
            app = crud_apps.get_app(session, slug=slug)
            if app is None:
                raise DeployPlanError(f"No app '{slug}'.")
            if runtime == "local":
                crud_deployments.set_serving(session, app_id=app.id, deployment_id=None)
                return None
            live = [d for d in crud_deployments.list_deployments(session, app_id=app.id)
                    if d.status == DeploymentStatus.LIVE.value and d.provider == runtime]
            chosen = next((d for d in live if d.id == deployment_id), None) if deployment_id else \
                (live[0] if live else None)
            if chosen is None:
                raise ValueError(f"App '{slug}' has no live {self.targets[runtime].label} deployment"
                                 + (f" with id {deployment_id}" if deployment_id else "")
                                 + f": deploy it first (POST /api/apps/{slug}/deployments with target "
                                   f"\"{runtime}\").")
            crud_deployments.set_serving(session, app_id=app.id, deployment_id=chosen.id)
            session.refresh(chosen)
            session.expunge(chosen)
            return chosen

    def runner_for(self, version: RunnableVersion) -> Runner | None:
        """Where a run of this app version goes: its serving deployment (by its provider) when it deploys that
        version; None: the local engines."""
        if version.deployment_version_id != version.version_id or not version.deployment_url:
            return None
        target = self.targets.get(version.deployment_provider or DEFAULT_TARGET)
        return target.runner(version) if target is not None else None

    def cost(self, provider: str, settings: Mapping[str, Any], prices: Mapping[str, float]) -> dict[str, Any]:
        """A deployment's cost estimate at `prices` (the table in force: gpu_prices(), read once per listing)."""
        target = self.targets.get(provider)
        return target.cost(settings, prices) if target is not None else {}

    async def aclose(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        for target in self.targets.values():
            await target.aclose()
