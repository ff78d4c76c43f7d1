"""What the routes share: settings, DB sessions, the engines, the run service.

Database work runs in worker threads, each with a session of its own that is closed before the thread
returns (`Services.db`): a connection is then never held while its request waits on the event loop, so the
pool cannot run dry with the loop itself waiting for it (db.session.forbid_checkouts_on_event_loop).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import HTTPException, status
from sqlalchemy.orm import Session, sessionmaker

from app.deployments import DeploymentService
from app.engine_status import EngineStatus
from app.run_service import RunService
from app.settings import Settings
from publisher import NodeCatalog
from runtimes.comfy.client import ComfyClient

T = TypeVar("T")


@dataclass
class Services:
    settings: Settings
    sessions: sessionmaker[Session]
    engines: EngineStatus
    runs: RunService
    deployments: DeploymentService
    _catalog_clients: dict[str, ComfyClient] = field(default_factory=dict)
    openapi_generation: int = 0  # bumped on every publish, so /openapi.json is rebuilt
    # Called after an app is published or unpublished (the web layer re-mounts its form); no-op by default.
    on_app_changed: Callable[[str], Awaitable[None]] | None = None
    share_url: str | None = None  # the public Gradio share link (--share), when one could be made

    async def app_changed(self, slug: str) -> None:
        if self.on_app_changed is not None:
            await self.on_app_changed(slug)

    async def db(self, work: Callable[..., T], /, *args: Any) -> T:
        """`work(session, *args)` in a worker thread; the session is closed (its connection given back) there."""
        return await asyncio.to_thread(self._in_session, work, *args)

    def _in_session(self, work: Callable[..., T], *args: Any) -> T:
        with self.sessions() as session:
            return work(session, *args)

    async def catalog(self, wait_s: float = 120.0) -> NodeCatalog:
        """The node schemas of a ready engine (fetched once per engine by its client). While the engines are
        still starting, waits for them rather than failing the request."""
        deadline = time.monotonic() + wait_s
        while self.engines.state == "starting" and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        ready = [engine for engine in self.engines.manager.engines if self.engines.is_ready() and engine.is_ready()]
        if not ready:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                                detail=f"No engine is ready (it is {self.engines.state}): GET /api/engine shows why.",
                                headers={"Retry-After": "5"})
        url = ready[0].url
        client = self._catalog_clients.get(url)
        if client is None:
            client = self._catalog_clients[url] = ComfyClient(url)
        return NodeCatalog.from_object_info(await client.object_info())

    def engine_url(self) -> str:
        """A ready engine's URL (call after catalog(), which waits for one)."""
        ready = [engine for engine in self.engines.manager.engines if engine.is_ready()]
        if not ready:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="No engine is ready.")
        return ready[0].url

    async def aclose(self) -> None:
        for client in self._catalog_clients.values():
            await client.aclose()
