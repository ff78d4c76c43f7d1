"""The node schemas publishing works from: those of a ready engine (fetched once per engine by its client)."""

from __future__ import annotations

import asyncio
import time

from app.engines import EngineStatus
from app.errors import Unavailable
from publisher import NodeCatalog
from runtimes.comfy.client import ComfyClient


class EngineCatalog:
    def __init__(self, engines: EngineStatus) -> None:
        self.engines = engines
        self._clients: dict[str, ComfyClient] = {}

    async def get(self, wait_s: float = 120.0) -> NodeCatalog:
        """The node schemas of a ready engine. While the engines are still starting, waits for them rather than
        failing the request."""
        deadline = time.monotonic() + wait_s
        while self.engines.state == "starting" and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        ready = [engine for engine in self.engines.engines() if self.engines.is_ready() and engine.is_ready()]
        if not ready:
            raise Unavailable(f"No engine is ready (it is {self.engines.state}): GET /api/engine shows why.",
                              retry_after=5)
        engine = ready[0]
        # Keyed by the process too: an engine restarted on the same port (new node packs) has new schemas.
        key = f"{engine.url}#{engine.process.pid if engine.process is not None else ''}"
        client = self._clients.get(key)
        if client is None:
            for stale in [k for k in self._clients if k.startswith(f"{engine.url}#")]:
                await self._clients.pop(stale).aclose()
            client = self._clients[key] = ComfyClient(engine.url)
        return NodeCatalog.from_object_info(await client.object_info())

    def engine_url(self) -> str:
        """A ready engine's URL (call after get(), which waits for one)."""
        ready = [engine for engine in self.engines.engines() if engine.is_ready()]
        if not ready:
            raise Unavailable("No engine is ready.")
        return ready[0].url

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
