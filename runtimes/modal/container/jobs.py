"""Async runs behind a deployment's endpoint: spawn one, poll its result, cancel it.

`ModalJobs` is the real thing (a worker-class method's `.spawn()`, `modal.FunctionCall.from_id()`).
`LocalJobs` runs the same worker coroutine in this process: the endpoint served on a laptop, and in tests.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from runtimes.contract import run_error

Result = dict[str, Any]


class Jobs(Protocol):
    async def spawn(self, payload: dict[str, Any]) -> str: ...

    async def result(self, call_id: str) -> Result | None:
        """The worker's result, or None while the run is still queued or running."""

    async def cancel(self, call_id: str) -> None: ...


class ModalJobs:
    def __init__(self, method: Any) -> None:
        self.method = method  # e.g. ComfyWorker().run: a modal method with .spawn

    async def spawn(self, payload: dict[str, Any]) -> str:
        call = await self.method.spawn.aio(payload)
        return call.object_id

    async def result(self, call_id: str) -> Result | None:
        import modal
        import modal.exception

        call = modal.FunctionCall.from_id(call_id)
        try:
            return await call.get.aio(timeout=0)
        except modal.exception.OutputExpiredError:
            return _ended("expired", "The result of this run has expired on Modal (results are kept for a limited "
                                     "time); run it again.")
        except modal.exception.TimeoutError:
            return None
        except modal.exception.Error as exc:
            cancelled = "cancel" in type(exc).__name__.lower() or "cancel" in str(exc).lower()
            return _ended("cancelled" if cancelled else "failed", f"{type(exc).__name__}: {exc}")

    async def cancel(self, call_id: str) -> None:
        import modal

        await modal.FunctionCall.from_id(call_id).cancel.aio()


class LocalJobs:
    """The Modal edge, replaced: spawn = an asyncio task of the worker's run coroutine."""

    def __init__(self, run: Callable[[dict[str, Any]], Awaitable[Result]]) -> None:
        self.run = run
        self._tasks: dict[str, asyncio.Task[Result]] = {}

    async def spawn(self, payload: dict[str, Any]) -> str:
        call_id = f"fc-local-{uuid.uuid4().hex}"
        self._tasks[call_id] = asyncio.create_task(self.run(payload))
        return call_id

    async def result(self, call_id: str) -> Result | None:
        task = self._tasks.get(call_id)
        if task is None:
            return _ended("failed", f"No run call '{call_id}'.")
        if not task.done():
            return None
        if task.cancelled():
            return _ended("cancelled", "Cancelled by request.")
        exc = task.exception()
        return _ended("failed", f"{type(exc).__name__}: {exc}") if exc else task.result()

    async def cancel(self, call_id: str) -> None:
        task = self._tasks.get(call_id)
        if task is not None and not task.done():
            task.cancel()  # execute_run stops the prompt on the engine before it gives up
            await asyncio.wait({task})


def _ended(status: str, message: str) -> Result:
    return {"status": status, "error": run_error(status if status != "failed" else "remote_error", message)}
