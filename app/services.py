"""What the routes share: settings, DB sessions, the engines, the run service."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import HTTPException, status
from sqlalchemy.orm import Session, sessionmaker

from app.engine_status import EngineStatus
from app.run_service import RunService
from app.settings import Settings
from publisher import NodeCatalog
from runtimes.comfy.client import ComfyClient


@dataclass
class Services:
    settings: Settings
    sessions: sessionmaker[Session]
    engines: EngineStatus
    runs: RunService
    _catalog_clients: dict[str, ComfyClient] = field(default_factory=dict)
    openapi_generation: int = 0  # bumped on every publish, so /openapi.json is rebuilt

    async def catalog(self) -> NodeCatalog:
        """The node schemas of a ready engine (fetched once per engine by its client)."""
        ready = [engine for engine in self.engines.manager.engines if self.engines.is_ready() and engine.is_ready()]
        if not ready:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                                detail=f"The engine is {self.engines.state}; try again in a few seconds "
                                       "(GET /api/engine shows its progress).", headers={"Retry-After": "5"})
        url = ready[0].url
        client = self._catalog_clients.get(url)
        if client is None:
            client = self._catalog_clients[url] = ComfyClient(url)
        return NodeCatalog.from_object_info(await client.object_info())

    async def aclose(self) -> None:
        for client in self._catalog_clients.values():
            await client.aclose()
