"""In-process fan-out of run events to the streams (SSE) and waits (sync runs) that follow a run."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any


class RunEvents:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)

    def subscribe(self, run_id: str) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        self._subscribers[run_id].add(queue)
        return queue

    def unsubscribe(self, run_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        queues = self._subscribers.get(run_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._subscribers[run_id]

    def has_subscribers(self, run_id: str) -> bool:
        return run_id in self._subscribers

    def publish(self, run_id: str, event: dict[str, Any]) -> None:
        for queue in list(self._subscribers.get(run_id, ())):
            if queue.full() and event.get("event") in ("progress", "preview"):
                continue  # a slow reader loses intermediate progress, never the final event
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)
