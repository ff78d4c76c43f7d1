"""What the routes, the forms and the studio share, built once in order by app.server: settings, database
sessions, the engines, the run and deployment services, and the notice of published apps changing.

Database work runs in worker threads, each with a session of its own that is closed before the thread
returns (`Services.db`): a connection is then never held while its request waits on the event loop, so the
pool cannot run dry with the loop itself waiting for it (db.session.forbid_checkouts_on_event_loop).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from app.assets.store import AssetStore
from app.deploy.service import DeploymentService
from app.engines import EngineStatus
from app.metrics import Metrics
from app.models.jobs import ModelFetches
from app.packs.service import NodePacks
from app.publish.catalog import EngineCatalog
from app.runs.service import RunService
from app.settings import Settings
from app.studio.share import ShareLink

T = TypeVar("T")
log = logging.getLogger(__name__)

Listener = Callable[[str], Awaitable[None] | None]


class AppChanges:
    """Published apps change (publish, new version, unpublish): who follows them (each app's form, the OpenAPI
    document) listens here. `generation` counts the changes, for caches."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self.generation = 0

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def changed(self, slug: str) -> None:
        self.generation += 1
        for listener in self._listeners:
            try:
                result = listener(slug)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # the publish itself stands; a listener's failure is logged
                log.exception("could not follow the change of app %s", slug)


@dataclass(frozen=True)
class Services:
    settings: Settings
    sessions: sessionmaker[Session]
    engines: EngineStatus
    catalog: EngineCatalog
    runs: RunService
    deployments: DeploymentService
    apps: AppChanges
    share: ShareLink
    models: ModelFetches
    packs: NodePacks  # custom node packs of the managed engines
    metrics: Metrics  # the live metrics (GET /metrics, the studio's Metrics tab)
    assets: AssetStore  # the Comfy API v2's assets: uploads by content, outputs

    async def db(self, work: Callable[..., T], /, *args: Any) -> T:
        """`work(session, *args)` in a worker thread; the session is closed (its connection given back) there."""
        return await asyncio.to_thread(self._in_session, work, *args)

    def _in_session(self, work: Callable[..., T], *args: Any) -> T:
        with self.sessions() as session:
            return work(session, *args)
