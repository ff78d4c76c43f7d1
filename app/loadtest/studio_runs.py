"""The load tests the studio starts against this very server: one at a time (a second would measure the first),
each in a report folder of its own (app/loadtest/reports.py), with an API key minted for it alone and revoked when
it ends. That key is handed to the runner only: never shown, logged or written to the report. It may run apps and
nothing more, except for a test of the app's Modal deployment: the runner reads the deployments (an admin's
reading) and sends the runs with the deployment's endpoint key, which this server derives."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.errors import Conflict, Unavailable
from app.loadtest.errors import LoadTestError
from app.loadtest.options import LoadTestOptions
from app.loadtest.reports import REPORT, ReportStore
from app.loadtest.runner import run_load_test
from app.services import Services
from app.settings import Settings
from db import crud_keys

log = logging.getLogger(__name__)
KEY_NAME = "studio load test {id}"  # how the minted key shows in `keys list` (revoked once the test ends)
_KEY_NAME = re.compile(r"^studio load test [0-9]{4,9}$")


class LoadTestBusy(Conflict):
    """A load test is already running from the studio."""


@dataclass
class Running:
    id: str
    folder: Path
    options: LoadTestOptions
    started: float = field(default_factory=time.monotonic)
    progress: list[dict[str, Any]] = field(default_factory=list)  # as the runner reports it, about once a second
    task: asyncio.Task[dict[str, Any]] | None = None

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started


def own_address(settings: Settings) -> str:
    """Where this server's load tests send their runs: itself, as launch.py serves it."""
    if not settings.self_url:
        raise Unavailable("This server was not started with an address to test (launch.py sets it from --host "
                          "and --port): run `python launch.py loadtest ...` from a shell instead.")
    return settings.self_url


def _mint(session: Session, name: str, admin: bool) -> tuple[int, str]:
    revoke_leftover_keys(session)  # none of ours is running now: a live one was left by a process that died
    key, token = crud_keys.create_api_key(session, name=name, admin=admin)
    return key.id, token


def revoke_leftover_keys(session: Session) -> list[int]:
    """Revoke the live keys of studio load tests (called while none runs); their ids."""
    leftovers = [k.id for k in crud_keys.list_api_keys(session) if k.revoked_at is None and _KEY_NAME.match(k.name)]
    for key_id in leftovers:
        crud_keys.revoke_api_key(session, key_id=key_id)
    return leftovers


def _log_failure(task: asyncio.Task[dict[str, Any]]) -> None:
    error = None if task.cancelled() else task.exception()
    if error is not None and not isinstance(error, LoadTestError | ValueError):  # those say what to fix
        log.error("%s failed", task.get_name(), exc_info=error)


def _revoke(session: Session, key_id: int) -> None:
    crud_keys.revoke_api_key(session, key_id=key_id)


class StudioLoadTests:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.store = ReportStore(services.settings.loadtests_dir)
        self.current: Running | None = None

    @property
    def running(self) -> Running | None:
        current = self.current
        return current if current is not None and current.task is not None and not current.task.done() else None

    def start(self, options: LoadTestOptions) -> Running:
        """Start a test in the background (on the running event loop); its task returns the report."""
        if (busy := self.running) is not None:
            raise LoadTestBusy(f"Load test {busy.id} ({busy.options.slug}) is running: wait for its report or stop "
                               "it first. One at a time: a second test would measure the first.")
        base_url = own_address(self.services.settings)
        report_id, folder = self.store.allocate()
        running = Running(report_id, folder, options)
        running.task = asyncio.create_task(self._run(running, base_url), name=f"load test {report_id}")
        running.task.add_done_callback(_log_failure)  # also when no page watches it any more
        self.current = running
        return running

    def stop(self) -> Running | None:
        """Cancel the running test (the runner stops Locust and its children); None when none runs."""
        running = self.running
        if running is not None and running.task is not None:
            running.task.cancel()
        return running

    async def _run(self, running: Running, base_url: str) -> dict[str, Any]:
        modal = running.options.target == "modal"
        minting = asyncio.ensure_future(self.services.db(_mint, KEY_NAME.format(id=running.id), modal))
        try:
            key_id, token = await asyncio.shield(minting)
        except asyncio.CancelledError:  # stopped while the key was made: it is made all the same, so revoke it
            await self.services.db(_revoke, (await minting)[0])
            self.store.discard(running.id)
            raise
        try:
            endpoint_key = self.services.deployments.endpoint_key(running.options.slug) if modal else None
            return await run_load_test(running.options, base_url=base_url, api_key=token, out_dir=running.folder,
                                       on_progress=running.progress.append, endpoint_key=endpoint_key,
                                       report_id=running.id)
        except BaseException:
            if not (running.folder / REPORT).is_file():  # stopped or failed before its report: nothing to keep
                self.store.discard(running.id)
            raise
        finally:
            # The thread finishes the revoke even if this task is cancelled again meanwhile.
            await self.services.db(_revoke, key_id)
            log.info("load test %s ended; its API key %s is revoked", running.id, key_id)
