"""The web app: one FastAPI process serving the REST API, the studio (/studio/) and every app's form
(/apps/{slug}/) on one port.

Collaborators are built once, in order, each handed what it needs (nothing is wired in later). Start-up order:
the engines were started before this module was imported (launch.py), so their start runs beside the app's; here
the DB is migrated, what a previous process left is queued again (runs wait while the engines start, so the first
request after a start never fails for an engine that is not ready yet), and each engine joins the worker pool as
soon as it answers.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse

from app.assets.store import AssetStore
from app.auth import web as web_auth
from app.auth.secrets import derive_secret, load_or_create_master_key, webhook_secret
from app.body_limit import BodyLimit, BodyLimits
from app.deploy.service import DeploymentService
from app.engines import EngineStatus
from app.errors import install_error_handlers
from app.forms.look import CSS, mount
from app.forms.registry import AppVisibility, FormMounts
from app.metrics import LiveState, Metrics
from app.models.jobs import ModelFetches
from app.packs.service import NodePacks
from app.publish.catalog import EngineCatalog
from app.publish.openapi import install_openapi
from app.routes import apps, editor, files, health, keys, metrics, models, nodes, runs, v2_assets, v2_jobs, workflows
from app.routes import deployments as deployment_routes
from app.routes import prices as price_routes
from app.runs.deliveries import RunWebhooks
from app.runs.events import RunEvents
from app.runs.inflight import InFlightRuns
from app.runs.model_check import ModelFiles
from app.runs.recorder import RunRecorder
from app.runs.retention import Retention
from app.runs.service import RunService
from app.runs.versions import Versions
from app.runs.webhooks import WebhookSender
from app.services import AppChanges, Services
from app.settings import Settings, data_dir_flag
from app.studio.page import STUDIO_CSS, build_studio
from app.studio.share import ShareLink
from app.v2.jobs import V2Jobs
from db.migrate import upgrade_to_head
from db.session import create_db_engine, make_session_factory
from runtimes.media import largest_upload_bytes
from runtimes.pool import WorkerPool


def create_app(settings: Settings, engines: EngineStatus, share: ShareLink | None = None) -> FastAPI:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_to_head(settings.db_url)
    db_engine = create_db_engine(settings.db_url)
    sessions = make_session_factory(db_engine)
    master_key = load_or_create_master_key(settings.data_dir)

    # Live metrics (GET /metrics): events counted through the hooks below, the rest read when scraped (the pool,
    # made below, is there by then).
    live = Metrics(LiveState(queued=lambda: pool.queued_count(), workers=lambda: pool.worker_count(),
                             busy=lambda: len(pool.running()),
                             engine_restarts=lambda: {e.name: e.restart_count for e in engines.manager.engines}))
    # A run's life: recorded as its runner reports, whichever runner it is.
    versions, in_flight, events = Versions(), InFlightRuns(), RunEvents()
    webhooks = RunWebhooks(sender=WebhookSender(allow_private=settings.allow_private_webhooks), sessions=sessions,
                           secret_of=lambda slug: webhook_secret(master_key, slug), on_result=live.delivery_ended)
    recorder = RunRecorder(settings=settings, sessions=sessions, versions=versions, in_flight=in_flight,
                           events=events, webhooks=webhooks, on_end=live.run_ended)
    pool = WorkerPool(on_update=recorder.on_update)  # no cap of its own: RunService.submit applies --max-queue
    # Runs of an app switched to a deployment go to its provider's Runner (Modal's endpoint, RunPod's job API).
    deployments = DeploymentService(data_dir=settings.data_dir, sessions=sessions, master_key=master_key,
                                    on_update=recorder.on_update)
    runs_service = RunService(settings=settings, sessions=sessions, versions=versions, in_flight=in_flight,
                              events=events, recorder=recorder, webhooks=webhooks, local=pool,
                              route=deployments.runner_for, engine_problem=engines.problem,
                              model_files=ModelFiles(engines.models_dir, engines.ready_url,
                                                     data_dir_flag(settings.data_dir)),
                              on_submit=live.run_submitted)
    catalog = EngineCatalog(engines)
    services = Services(settings=settings, sessions=sessions, engines=engines, catalog=catalog, runs=runs_service,
                        deployments=deployments, apps=AppChanges(), share=share or ShareLink(),
                        models=ModelFetches(engines.models_dir(), engines.manager.settings.comfyui_url),
                        packs=NodePacks(engines.manager.settings, engines.manager), metrics=live,
                        assets=AssetStore(settings.data_dir))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        await pool.start()
        await runs_service.recover()
        await asyncio.to_thread(deployments.recover)
        engines.attach(lambda engine: loop.call_soon_threadsafe(pool.add_engine, engine))
        sweeper = asyncio.create_task(Retention(settings=settings, sessions=sessions, assets=services.assets).run())
        try:
            yield
        finally:
            sweeper.cancel()
            cut_short = list(pool.running())
            await pool.stop()
            await deployments.aclose()
            await asyncio.to_thread(runs_service.requeue_interrupted, cut_short)
            await webhooks.aclose()
            await catalog.aclose()
            await asyncio.to_thread(engines.stop)
            db_engine.dispose()

    app = FastAPI(title="Comfy Publisher", version="0.1.0", lifespan=lifespan,
                  description="Published ComfyUI workflows as typed, versioned REST endpoints. Authenticate with "
                              "`Authorization: Bearer <API key>` (create one: `python launch.py keys create NAME`).")
    app.state.services = services
    app.state.metrics = live
    install_error_handlers(app)
    # Runs first: a request walks the routes in order, and run submissions and status polls are most of them; then
    # the Comfy API v2's jobs and assets at each base URL (the server's, each app's: before the forms take
    # /apps/{slug}/), whose polls are the rest.
    app.include_router(runs.router)
    app.state.v2_jobs = V2Jobs(services)
    v2_jobs.include_at_surfaces(app, v2_jobs.router)
    app.include_router(v2_assets.router)
    v2_jobs.include_at_app_surfaces(app, v2_assets.assets_router(v2_jobs.app_asset_access))
    for module in (health, workflows, apps, deployment_routes, price_routes, keys, files, editor, models, nodes,
                   metrics):
        app.include_router(module.router)
    install_openapi(app, services)
    _mount_ui(app, services, master_key)
    # Outermost (added last): a body over its cap is refused before the login guard, a route or a form reads it.
    app.add_middleware(BodyLimit, limits=BodyLimits.of(settings.max_upload_bytes))

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/studio/")

    @app.get("/status", response_class=HTMLResponse, include_in_schema=False)
    def status_page() -> str:
        """A page without JavaScript: engine state and start-up log (also a fallback to the studio)."""
        return _status_page(engines)

    return app


def _mount_ui(app: FastAPI, services: Services, master_key: bytes) -> None:
    """The studio at /studio/, each app's form at /apps/{slug}/, and the login guard in front of both."""
    settings = services.settings
    visibility = AppVisibility()
    auth = web_auth.WebAuth(credentials=settings.studio_auth, sessions=services.sessions,
                            secret=derive_secret(master_key, "studio-session").encode(),
                            is_public_app=visibility.is_public)
    app.state.web_auth = auth
    app.include_router(web_auth.router)
    settings.outputs_dir.mkdir(parents=True, exist_ok=True)
    settings.test_runs_dir.mkdir(parents=True, exist_ok=True)
    settings.loadtests_dir.mkdir(parents=True, exist_ok=True)
    mount(app, build_studio(services), "/studio", max_file_size=largest_upload_bytes(settings.max_upload_bytes),
          css=CSS + STUDIO_CSS,
          allowed_paths=[str(settings.outputs_dir), str(settings.test_runs_dir), str(settings.loadtests_dir)])
    forms = FormMounts(app, services, auth=auth, visibility=visibility)
    forms.mount_all()
    services.apps.listen(forms.refresh)
    app.add_middleware(web_auth.Guard, auth=auth)


def _status_page(engines: EngineStatus) -> str:
    info = engines.describe()
    rows = "".join(
        f"<li><b>{html.escape(e['name'])}</b> on {html.escape(e['device_name'])}"
        + (f" — <a href='{html.escape(e['url'])}'>ComfyUI editor</a>" if e["url"] else "")
        + "</li>"
        for e in info["engines"]
    )
    refresh = "<meta http-equiv='refresh' content='2'>" if info["state"] == "starting" else ""
    log = html.escape("\n".join(info["progress"]))
    error = f"<p class='error'>{html.escape(info['error'])}</p>" if info["error"] else ""
    return f"""<!doctype html><html><head><meta charset='utf-8'><title>Comfy Publisher</title>{refresh}
<style>body{{font-family:system-ui,sans-serif;max-width:760px;margin:3rem auto;color:#222}}
pre{{background:#f4f4f6;padding:1rem;border-radius:8px;white-space:pre-wrap;font-size:.85rem}}
.error{{color:#b00020;white-space:pre-wrap}}</style></head><body>
<h1>Comfy Publisher</h1><p>Engine: <b>{info['state']}</b></p>{error}<ul>{rows}</ul>
<p><a href='/docs'>API docs</a></p><h3>Start-up</h3><pre>{log}</pre></body></html>"""
