"""Deploying app versions to Modal, for the REST routes and the CLI: plan (validate + generate), preflight,
deploy in the background with a streamed log, record every step, tear down, and route runs to a deployment.

The endpoint key is derived from the server's master key (app/auth/secrets.py): never stored, never logged; it
reaches Modal only inside a modal.Secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.auth.secrets import derive_secret
from app.errors import NotFound
from db import crud_apps, crud_deployments
from db.crud_apps import RunnableVersion
from db.models import App, AppVersion, Deployment, DeploymentStatus
from publisher import AppSpec
from runtimes.contract import Runner
from runtimes.modal.host import deploy as modal_deploy
from runtimes.modal.host.generate import HF_SECRET_NAME, Bundle, generate, modal_names
from runtimes.modal.host.runner import RemoteRuns, RemoteTarget
from runtimes.modal.host.settings import DeploySettings
from runtimes.planner.prices import PriceTable, in_force_or_builtin

log = logging.getLogger(__name__)
PROVIDER = "modal"
LOG_FLUSH_S = 0.5


class DeployPlanError(NotFound):
    """No such app or version (the message says which)."""


@dataclass(frozen=True)
class Plan:
    app: App
    version: AppVersion
    settings: DeploySettings
    bundle: Bundle
    prices: PriceTable  # the GPU prices in force when planned (the generated file's comment, the preview's cost)


def endpoint_key_of(master_key: bytes, slug: str) -> str:
    """The key an app's deployment endpoint takes (kept only in its Modal secret; derived again when needed)."""
    return derive_secret(master_key, f"modal-endpoint:{slug}")


class DeploymentService:
    def __init__(self, *, data_dir: Path, sessions: sessionmaker[Session], master_key: bytes,
                 remote: RemoteRuns | None = None) -> None:
        """`remote`: sends runs to deployments (the server's; the command line deploys without running)."""
        self.data_dir = data_dir
        self.sessions = sessions
        self._master = master_key
        self.remote = remote
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._listeners: dict[int, set[asyncio.Queue[str | None]]] = {}

    def gpu_prices(self) -> PriceTable:
        """The GPU prices in force: the data dir's table, or the built-in one while that file is broken."""
        return in_force_or_builtin(self.data_dir)[0]

    def endpoint_key(self, slug: str) -> str:
        return endpoint_key_of(self._master, slug)

    def bundle_dir(self, slug: str, version: int) -> Path:
        return self.data_dir / "deployments" / f"{slug}-v{version}"

    # --- plan and deploy ---------------------------------------------------------------------------------

    def plan(self, slug: str, version: int | None, raw: Mapping[str, Any] | None) -> Plan:
        """Validate the settings (DeploySettingsError) and generate the files; deploys nothing."""
        settings = DeploySettings.from_dict(raw)
        with self.sessions() as session:
            app = crud_apps.get_app(session, slug=slug)
            if app is None:
                raise DeployPlanError(f"No app '{slug}'. GET /api/apps lists the apps.")
            found = crud_apps.get_version(session, app_id=app.id, number=version)
            if found is None:
                raise DeployPlanError(f"App '{slug}' has no version {version}.")
            session.expunge_all()
        prices = self.gpu_prices()
        bundle = generate(AppSpec.from_dict(found.spec), settings, slug=slug, version=found.number, title=app.name,
                          gpu_prices=prices.usd_per_hour)
        return Plan(app, found, settings, bundle, prices)

    async def start(self, plan: Plan) -> Deployment:
        """Preflight (fails within seconds, recording nothing), then record and deploy in the background."""
        await modal_deploy.preflight()
        directory = self.bundle_dir(plan.app.slug, plan.version.number)
        await asyncio.to_thread(plan.bundle.write, directory)
        row = await asyncio.to_thread(self._record, plan)
        self._tasks[row.id] = asyncio.create_task(self._deploy(row.id, plan, directory), name=f"deploy-{row.id}")
        return row

    def recover(self) -> int:
        """At start-up (in a worker thread): deploys the last process was running never finished here."""
        with self.sessions() as session:
            return crud_deployments.fail_unfinished(session, reason=(
                "The app stopped while this deploy was running; whether Modal finished it is unknown. Deploy "
                "again (or check `modal app list`)."))

    def _record(self, plan: Plan) -> Deployment:
        with self.sessions() as session:
            row = crud_deployments.create_deployment(
                session, app_id=plan.app.id, version_id=plan.version.id, provider=PROVIDER,
                settings=plan.settings.to_dict(), app_name=plan.bundle.app_name)
            session.expunge(row)
            return row

    async def wait(self, deployment_id: int) -> None:
        task = self._tasks.get(deployment_id)
        if task is not None:
            await asyncio.wait({task})

    async def _deploy(self, deployment_id: int, plan: Plan, directory: Path) -> None:
        pending: list[str] = []
        last_flush = time.monotonic()

        async def note(line: str) -> None:
            nonlocal last_flush
            pending.append(line)
            for queue in self._listeners.get(deployment_id, ()):
                queue.put_nowait(line)
            if time.monotonic() - last_flush >= LOG_FLUSH_S:
                await asyncio.to_thread(self._flush, deployment_id, pending)
                last_flush = time.monotonic()

        key = self.endpoint_key(plan.app.slug)
        try:
            for warning in plan.bundle.warnings:
                await note(f"warning: model not downloaded: {warning}")
            await note(f"Creating the secret {plan.bundle.secret_name} (endpoint key)")
            await modal_deploy.ensure_secret(plan.bundle.secret_name, {"COMFY_PUBLISHER_ENDPOINT_KEY": key})
            if "hf_secret" in plan.bundle.modal_app:
                token = os.environ.get("HF_TOKEN")
                await note(f"Creating the secret {HF_SECRET_NAME} ({'with' if token else 'without'} HF_TOKEN)")
                await modal_deploy.ensure_secret(HF_SECRET_NAME, {"HF_TOKEN": token} if token else
                                                 {"HF_HUB_DISABLE_TELEMETRY": "1"})
            await note(f"modal deploy {directory / 'modal_app.py'} --name {plan.bundle.app_name}")
            run = modal_deploy.DeployRun(directory, plan.bundle.app_name, redact=(key,))
            async for line in run.lines():
                await note(line)
            url = run.url or await modal_deploy.web_url(plan.bundle.app_name)
            if not url:
                raise modal_deploy.DeployError("The deploy finished but Modal gave no endpoint URL.")
            await note(f"Live at {url}")
            await asyncio.to_thread(self._flush, deployment_id, pending)
            await asyncio.to_thread(self._went_live, deployment_id, plan, url.rstrip("/"))
        except Exception as exc:
            message = str(exc) if isinstance(exc, modal_deploy.DeployError) else f"{type(exc).__name__}: {exc}"
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
            crud_deployments.superseded(session, app_id=plan.app.id, app_name=plan.bundle.app_name,
                                        keep_id=deployment_id)

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

    async def teardown(self, slug: str) -> int:
        """Stop the app's Modal app; its deployments are recorded as stopped and its runs go local again."""
        app_id = await asyncio.to_thread(self._app_id, slug)
        app_name = modal_names(slug)[0]
        await modal_deploy.teardown(app_name)
        return await asyncio.to_thread(self._stopped, app_id, app_name)

    def _app_id(self, slug: str) -> int:
        with self.sessions() as session:
            app = crud_apps.get_app(session, slug=slug)
            if app is None:
                raise DeployPlanError(f"No app '{slug}'.")
            return app.id

    def _stopped(self, app_id: int, app_name: str) -> int:
        with self.sessions() as session:
            return crud_deployments.mark_stopped(session, app_id=app_id, app_name=app_name)

    def set_runtime(self, slug: str, runtime: str, deployment_id: int | None = None) -> Deployment | None:
        with self.sessions() as session:
            app = crud_apps.get_app(session, slug=slug)
            if app is None:
                raise DeployPlanError(f"No app '{slug}'.")
            if runtime == "local":
                crud_deployments.set_serving(session, app_id=app.id, deployment_id=None)
                return None
            live = [d for d in crud_deployments.list_deployments(session, app_id=app.id)
                    if d.status == DeploymentStatus.LIVE.value]
            chosen = next((d for d in live if d.id == deployment_id), None) if deployment_id else \
                (live[0] if live else None)
            if chosen is None:
                raise ValueError(f"App '{slug}' has no live Modal deployment"
                                 + (f" with id {deployment_id}" if deployment_id else "")
                                 + ": deploy it first (POST /api/apps/{slug}/deployments).")
            crud_deployments.set_serving(session, app_id=app.id, deployment_id=chosen.id)
            session.refresh(chosen)
            session.expunge(chosen)
            return chosen

    def runner_for(self, version: RunnableVersion) -> Runner | None:
        """Where a run of this app version goes: its serving deployment when it deploys that version; None: the
        local engines."""
        if version.deployment_version_id != version.version_id or not version.deployment_url or self.remote is None:
            return None
        return self.remote.runner(RemoteTarget(name=f"modal:{version.deployment_app_name}",
                                               url=version.deployment_url, key=self.endpoint_key(version.slug)))

    async def aclose(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if self.remote is not None:
            await self.remote.aclose()
