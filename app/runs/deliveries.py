"""A run's webhook: the payload (the run as GET /api/runs/{id} shows it, outputs and timings included), signed
with its app's secret, delivered in the background, and how the delivery ended recorded on the run. The delivery
id is the run's and the event's: a delivery sent again after a restart keeps it, so receivers can deduplicate."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from app.runs.views import RunOut
from app.runs.webhooks import DeliveryResult, WebhookSender
from db import crud_runs

_DELIVERY_IDS = uuid.UUID("6f1d3c52-8a4e-4f57-9a8e-2b7c0d9e4a11")  # namespace of webhook delivery ids


class RunWebhooks:
    def __init__(self, *, sender: WebhookSender, sessions: sessionmaker[Session],
                 secret_of: Callable[[str], str], on_result: Callable[[bool], None] = lambda delivered: None) -> None:
        self.sender = sender
        self.sessions = sessions
        self.secret_of = secret_of  # app slug -> its signing secret (derived, never stored)
        self.on_result = on_result  # told whether each delivery ended delivered (app.metrics)

    def send(self, final: RunOut, url: str) -> None:
        event = f"run.{final.status}"

        async def record(result: DeliveryResult) -> None:
            self.on_result(result.delivered)
            await asyncio.to_thread(self._record, final.id, result)

        self.sender.send_in_background(url, {"event": event, "run": final.model_dump(mode="json")},
                                       self.secret_of(final.app), event,
                                       delivery_id=str(uuid.uuid5(_DELIVERY_IDS, f"{final.id}:{event}")),
                                       on_result=record)

    def _record(self, run_id: str, result: DeliveryResult) -> None:
        with self.sessions() as session:
            crud_runs.record_webhook(session, run_id=run_id, delivered=result.delivered, error=result.error)

    async def aclose(self) -> None:
        await self.sender.aclose()
