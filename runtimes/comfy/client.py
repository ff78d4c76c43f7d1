"""An asyncio client for one ComfyUI engine: submit, follow, collect, cancel.

Protocol facts this relies on (measured, see shared/notes/engine.md):
- the websocket is connected *before* `POST /prompt`, and every prompt carries our `client_id`,
  otherwise the engine sends its per-prompt events to nobody;
- the end of a prompt is `executing {node: null}`, sent after its history entry is written
  (`execution_success` comes before); the history read is still retried, as after a reconnect;
- a dropped websocket is reconnected and the run reconciled from `/history` and `/queue`, so a run is
  never left waiting for events that were sent while we were away.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from runtimes.comfy import events as ev
from runtimes.comfy.errors import (
    EngineConnectionLostError,
    EngineRequestError,
    EngineUnavailableError,
    ExecutionFailedError,
    PromptLostError,
    PromptValidationError,
    RunInterruptedError,
    RunTimeoutError,
)

EventCallback = Callable[[ev.EngineEvent], Awaitable[None] | None]


@dataclass(frozen=True)
class Timeouts:
    """Every wait on the engine is bounded; seconds."""

    connect: float = 10.0
    request: float = 30.0
    run: float = 600.0
    history: float = 5.0  # how long a finished prompt may take to show up in /history
    reconnect: float = 30.0  # how long a dropped websocket may take to come back during a run


@dataclass(frozen=True)
class OutputFile:
    """A file a node produced, as the engine's history lists it (`type` is output or temp)."""

    node_id: str
    filename: str
    subfolder: str
    type: str
    kind: str  # the history key it came under: images, gifs, audio, video, ...

    @property
    def query(self) -> dict[str, str]:
        return {"filename": self.filename, "subfolder": self.subfolder, "type": self.type}


@dataclass
class RunResult:
    prompt_id: str
    outputs: list[OutputFile]
    node_outputs: dict[str, Any]  # history `outputs` as the engine gave them (text, numbers, files)
    cached_nodes: tuple[str, ...] = ()
    submitted_at: float = 0.0
    started_at: float | None = None
    finished_at: float = 0.0
    events: list[str] = field(default_factory=list)

    @property
    def exec_ms(self) -> float | None:
        return None if self.started_at is None else (self.finished_at - self.started_at) * 1000


@dataclass(frozen=True)
class EngineResponse:
    """An engine's HTTP answer, read whole."""

    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


# Markers the websocket pump puts into a run's queue besides engine events.
_DISCONNECTED = object()
_RECONNECTED = object()
_CONNECTION_LOST = object()
_DELETED = object()


class ComfyClient:
    """One client per engine; safe to share between concurrent runs."""

    def __init__(self, base_url: str, *, timeouts: Timeouts | None = None, client_id: str | None = None,
                 output_dir: Path | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        # The engine's output folder when it is on this machine (an engine the app launched): outputs are then
        # read from disk instead of asked for over HTTP (/view), which costs a request per file.
        self.output_dir = output_dir.resolve() if output_dir is not None else None
        self.timeouts = timeouts or Timeouts()
        self.client_id = client_id or uuid.uuid4().hex
        # aiohttp, not httpx: a request to the engine cost 0.71 ms of CPU through httpx and 0.10 ms through aiohttp
        # (measured here), and each run makes one on its critical path. Made on first use, in the event loop that
        # uses it (an aiohttp session belongs to one loop).
        self._session: aiohttp.ClientSession | None = None
        self._object_info: dict[str, Any] | None = None
        self._subscribers: dict[str, asyncio.Queue[Any]] = {}
        self._pump_task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._connect_error: BaseException | None = None
        self._executing_prompt: str | None = None

    async def __aenter__(self) -> ComfyClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._pump_task is not None:
            self._pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump_task
            self._pump_task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- plain HTTP calls -------------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # The engine is spoken to directly (trust_env off: no HTTP proxy from the environment in between).
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeouts.connect,
                                              sock_read=self.timeouts.request),
                trust_env=False)
        return self._session

    async def _request(self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any) -> EngineResponse:
        """The engine's answer, read whole (`kwargs`: aiohttp's params, json, data, headers)."""
        limit = aiohttp.ClientTimeout(total=timeout) if timeout is not None else None
        try:
            async with self._http().request(method, self.base_url + path, timeout=limit, **kwargs) as response:
                return EngineResponse(response.status, await response.read())
        except TimeoutError as exc:  # aiohttp's own timeouts are TimeoutErrors too
            raise RunTimeoutError(None, f"{method} {path} on the engine at {self.base_url}",
                                  timeout or self.timeouts.request) from exc
        except aiohttp.ClientError as exc:
            raise EngineUnavailableError(
                f"Cannot reach the ComfyUI engine at {self.base_url} ({type(exc).__name__}: {exc}). "
                "Is it running? Check the engine log or the --comfyui-url you gave."
            ) from exc

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._request(method, path, **kwargs)
        if response.status_code != 200:
            raise EngineRequestError(method, path, response.status_code, response.text)
        return response.json()

    async def system_stats(self) -> dict[str, Any]:
        return await self._json("GET", "/system_stats")

    async def object_info(self, *, refresh: bool = False) -> dict[str, Any]:
        """Node schemas of this engine; fetched once (it is large and changes only with custom nodes)."""
        if self._object_info is None or refresh:
            self._object_info = await self._json("GET", "/object_info")
        return self._object_info

    async def queue(self) -> dict[str, Any]:
        return await self._json("GET", "/queue")

    async def where(self, prompt_id: str) -> Literal["running", "pending"] | None:
        """Where the engine holds a prompt: running it, waiting in its queue, or (None) neither."""
        state = await self.queue()
        for place, key in (("running", "queue_running"), ("pending", "queue_pending")):
            if any(item[1] == prompt_id for item in state.get(key, [])):
                return place  # type: ignore[return-value]
        return None

    async def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The engine's history entry of one prompt, or None while it has none."""
        entries = await self._json("GET", f"/history/{prompt_id}")
        return entries.get(prompt_id)

    async def upload_image(
        self, data: bytes, filename: str, *, subfolder: str = "", overwrite: bool = True
    ) -> str:
        """Put an image in the engine's input folder; returns the value LoadImage's `image` takes."""
        form = aiohttp.FormData()
        form.add_field("image", data, filename=filename, content_type="application/octet-stream")
        for name, value in (("subfolder", subfolder), ("overwrite", "true" if overwrite else "false"),
                            ("type", "input")):
            form.add_field(name, value)
        info = await self._json("POST", "/upload/image", data=form)
        return f"{info['subfolder']}/{info['name']}" if info.get("subfolder") else info["name"]

    async def fetch_output(self, output: OutputFile) -> bytes:
        if (local := self._local_output(output)) is not None:
            with contextlib.suppress(OSError):  # gone or unreadable: the engine can still serve it
                return await asyncio.to_thread(local.read_bytes)
        response = await self._request("GET", "/view", params=output.query)
        if response.status_code != 200:
            raise EngineRequestError("GET", f"/view?filename={output.filename}", response.status_code,
                                     response.text)
        return response.content

    def _local_output(self, output: OutputFile) -> Path | None:
        if self.output_dir is None or output.type != "output":
            return None
        path = (self.output_dir / output.subfolder / output.filename).resolve()
        return path if path.is_relative_to(self.output_dir) and path != self.output_dir else None

    async def submit(self, prompt: Mapping[str, Any], *, prompt_id: str | None = None,
                     extra_data: Mapping[str, Any] | None = None) -> str:
        """Queue a prompt under our client id; returns its prompt id (ours, when given). `extra_data`: what the
        engine hands its nodes besides the prompt (the engine keeps its secrets out of its queue and history)."""
        body: dict[str, Any] = {"prompt": prompt, "client_id": self.client_id}
        if prompt_id is not None:
            body["prompt_id"] = prompt_id
        if extra_data:
            body["extra_data"] = dict(extra_data)
        response = await self._request("POST", "/prompt", data=json.dumps(body),
                                       headers={"Content-Type": "application/json"})
        if response.status_code == 400:
            payload = _json_or_none(response)
            if isinstance(payload, dict) and ("error" in payload or "node_errors" in payload):
                error = payload.get("error")
                error = error if isinstance(error, dict) else {"message": str(error)}
                raise PromptValidationError(error, payload.get("node_errors") or {})
        if response.status_code != 200:
            raise EngineRequestError("POST", "/prompt", response.status_code, response.text)
        return str(response.json()["prompt_id"])

    async def interrupt(self, prompt_id: str | None = None) -> None:
        """Stop the running prompt (only `prompt_id` when given) after its current step."""
        body = {"prompt_id": prompt_id} if prompt_id else {}
        await self._json_post_no_content("/interrupt", body)

    async def delete_queued(self, prompt_id: str) -> bool:
        """Remove a prompt that waits in the engine's queue; False when it is not waiting there."""
        if await self.where(prompt_id) != "pending":
            return False
        await self._json_post_no_content("/queue", {"delete": [prompt_id]})
        follower = self._subscribers.get(prompt_id)
        if follower is not None:  # the engine sends no event for a deleted prompt: tell its follower
            follower.put_nowait(_DELETED)
        return True

    async def cancel(self, prompt_id: str) -> str:
        """Cancel wherever the prompt is: 'deleted' from the queue, 'interrupted', or 'not_found'."""
        if await self.delete_queued(prompt_id):
            return "deleted"
        if await self.where(prompt_id) == "running":
            await self.interrupt(prompt_id)
            return "interrupted"
        return "not_found"

    async def _json_post_no_content(self, path: str, body: dict[str, Any]) -> None:
        response = await self._request("POST", path, json=body)
        if response.status_code != 200:
            raise EngineRequestError("POST", path, response.status_code, response.text)

    # --- runs ---------------------------------------------------------------------------------------

    async def run(
        self,
        prompt: Mapping[str, Any],
        *,
        prompt_id: str | None = None,
        on_event: EventCallback | None = None,
        timeout: float | None = None,
        output_nodes: Collection[str] | None = None,
        extra_data: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Submit a prompt and follow it to the end; returns its outputs or raises a typed error.

        `output_nodes`, the prompt's output nodes when the caller knows them, lets the outputs come from the
        run's `executed` events alone, with no history request, unless one of them was served from the cache
        without such an event."""
        prompt_id = prompt_id or uuid.uuid4().hex
        limit = self.timeouts.run if timeout is None else timeout
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._subscribers[prompt_id] = queue  # before submitting: no event may slip past us
        try:
            await self._ensure_connected()
            result = RunResult(prompt_id, [], {}, submitted_at=time.monotonic())
            await self.submit(prompt, prompt_id=prompt_id, extra_data=extra_data)
            return await self._follow(result, queue, on_event, time.monotonic() + limit, limit, output_nodes)
        finally:
            self._subscribers.pop(prompt_id, None)

    async def _follow(
        self,
        result: RunResult,
        queue: asyncio.Queue[Any],
        on_event: EventCallback | None,
        deadline: float,
        limit: float,
        output_nodes: Collection[str] | None,
    ) -> RunResult:
        prompt_id = result.prompt_id
        # One deadline for the whole run, not a wait_for per event: that wraps each wait in a task of its own.
        limit_scope = asyncio.timeout(max(0.0, deadline - time.monotonic()))
        try:
            async with limit_scope:
                return await self._events(result, queue, on_event, output_nodes)
        except TimeoutError:
            if limit_scope.expired():
                raise RunTimeoutError(prompt_id, "the run", limit) from None
            raise

    async def _events(self, result: RunResult, queue: asyncio.Queue[Any], on_event: EventCallback | None,
                      output_nodes: Collection[str] | None) -> RunResult:
        prompt_id = result.prompt_id
        executed: dict[str, Any] = {}  # node id -> its `executed` output: what history would list for it
        while True:
            item = await queue.get()
            if item is _DISCONNECTED:
                continue
            if item is _CONNECTION_LOST:
                raise EngineConnectionLostError(
                    f"Lost the websocket to the engine at {self.base_url} during run {prompt_id} and it did "
                    f"not come back within {self.timeouts.reconnect:g} s: the engine stopped or crashed."
                )
            if item is _DELETED:
                raise RunInterruptedError(prompt_id, queued=True)
            if item is _RECONNECTED:
                if await self._reconcile(result):
                    return result
                continue
            event: ev.EngineEvent = item
            result.events.append(event.type)
            if on_event is not None:
                maybe = on_event(event)
                if inspect.isawaitable(maybe):
                    await maybe
            match event:
                case ev.ExecutionStart():
                    result.started_at = time.monotonic()
                case ev.ExecutionCached(nodes=nodes):
                    result.cached_nodes = nodes
                case ev.Executed(node=str() as node, output=output):
                    executed[node] = output
                case ev.ExecutionError(data=data):
                    raise _execution_failed(prompt_id, data)
                case ev.ExecutionInterrupted(node=node):
                    raise RunInterruptedError(prompt_id, node)
                case ev.Executing(node=None):
                    # The end. Not execution_success: the engine sends that before it writes the
                    # history entry, and reading history then misses about a third of the time.
                    await self._collect(result, executed, output_nodes)
                    return result

    async def _collect(self, result: RunResult, executed: dict[str, Any], output_nodes: Collection[str] | None) -> None:
        """The outputs as the `executed` events gave them, the same values the engine writes to history. A node
        served from the cache may send no `executed` event (ComfyUI 0.3.75 sends one, older engines do not):
        then, or when the output nodes are not known, history is asked."""
        unseen = [n for n in result.cached_nodes if n not in executed and (output_nodes is None or n in output_nodes)]
        if unseen:
            _fill_outputs(result, await self.wait_for_history(result.prompt_id))
        else:
            _fill_outputs(result, {"outputs": executed})

    async def wait_for_history(self, prompt_id: str) -> dict[str, Any]:
        """The history entry, retried briefly: the websocket can announce the end before it exists."""
        deadline = time.monotonic() + self.timeouts.history
        delay = 0.005
        while True:
            entry = await self.history(prompt_id)
            if entry is not None:
                return entry
            if time.monotonic() >= deadline:
                raise RunTimeoutError(prompt_id, "the engine's history entry", self.timeouts.history)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def _reconcile(self, result: RunResult) -> bool:
        """After a reconnect: events may have been missed, so ask the engine where the prompt is."""
        prompt_id = result.prompt_id
        entry = await self.history(prompt_id)
        if entry is not None:
            status = entry.get("status") or {}
            for name, data in status.get("messages", []):
                if name == "execution_error":
                    raise _execution_failed(prompt_id, data)
                if name == "execution_interrupted":
                    raise RunInterruptedError(prompt_id, _str_or_none(data.get("node_id")))
            if status.get("completed", True) or status.get("status_str") == "success":
                _fill_outputs(result, entry)
                result.events.append("reconciled_from_history")
                return True
        if await self.where(prompt_id) is not None:
            return False
        raise PromptLostError(
            f"The engine at {self.base_url} no longer knows run {prompt_id}: it restarted while the run was "
            "in progress, so the run's work is lost. Submit it again."
        )

    # --- the websocket pump ----------------------------------------------------------------------

    async def _ensure_connected(self) -> None:
        if self._pump_task is None or self._pump_task.done():
            self._connected.clear()
            self._connect_error = None
            self._pump_task = asyncio.create_task(self._pump(), name=f"comfy-ws-{self.client_id[:8]}")
        if self._connected.is_set():
            return
        waiter = asyncio.create_task(self._connected.wait())
        await asyncio.wait({waiter, self._pump_task}, timeout=self.timeouts.connect + 1,
                           return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if not self._connected.is_set():
            cause = self._connect_error
            raise EngineUnavailableError(
                f"Cannot open the websocket of the ComfyUI engine at {self.base_url}"
                + (f" ({type(cause).__name__}: {cause})" if cause else " (timed out)")
                + ". Is it running? Check the engine log or the --comfyui-url you gave."
            )

    def _ws_url(self) -> str:
        scheme = "wss" if self.base_url.startswith("https") else "ws"
        return f"{scheme}{self.base_url[self.base_url.index(':'):]}/ws?clientId={self.client_id}"

    async def _open_socket(self) -> ClientConnection:
        socket = await connect(
            self._ws_url(), proxy=None, max_size=None, open_timeout=self.timeouts.connect, compression=None
        )
        # Ask for previews that name their node and prompt (PREVIEW_IMAGE_WITH_METADATA frames).
        await socket.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
        return socket

    async def _pump(self) -> None:
        """Read the websocket for as long as the client lives, reconnecting after drops."""
        first = True
        while True:
            try:
                socket = await self._open_socket()
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                self._connect_error = exc
                if first:
                    return  # _ensure_connected reports it
                if not await self._reconnect_or_give_up():
                    return
                continue
            if not first:
                self._broadcast(_RECONNECTED)
            first = False
            self._connected.set()
            try:
                async for message in socket:
                    self._dispatch(message)
            except (ConnectionClosed, OSError):
                pass
            self._connected.clear()
            self._broadcast(_DISCONNECTED)
            if not await self._reconnect_or_give_up():
                return

    async def _reconnect_or_give_up(self) -> bool:
        """Retry with backoff until the reconnect limit; on giving up, fail the runs that wait."""
        deadline = time.monotonic() + self.timeouts.reconnect
        delay = 0.1
        while time.monotonic() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
            try:
                if (await self._request("GET", "/system_stats", timeout=2.0)).status_code == 200:
                    return True
            except (EngineUnavailableError, RunTimeoutError):
                pass
        self._broadcast(_CONNECTION_LOST)
        return False

    def _dispatch(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            event = ev.parse_binary_message(message, self._executing_prompt)
        else:
            event = ev.parse_text_message(message)
        if event is None or event.prompt_id is None:
            return
        if isinstance(event, ev.Executing):
            self._executing_prompt = event.prompt_id if event.node is not None else None
        queue = self._subscribers.get(event.prompt_id)
        if queue is not None:
            queue.put_nowait(event)

    def _broadcast(self, marker: object) -> None:
        for queue in self._subscribers.values():
            queue.put_nowait(marker)


def _fill_outputs(result: RunResult, entry: dict[str, Any]) -> None:
    result.node_outputs = entry.get("outputs") or {}
    result.outputs = list(_output_files(result.node_outputs))
    result.finished_at = time.monotonic()


def _output_files(node_outputs: dict[str, Any]) -> list[OutputFile]:
    files = []
    for node_id, output in node_outputs.items():
        for kind, items in output.items():
            if not isinstance(items, list):
                continue
            for item in items:
                if isinstance(item, dict) and "filename" in item:
                    files.append(OutputFile(str(node_id), item["filename"], item.get("subfolder", ""),
                                            item.get("type", "output"), kind))
    return files


def _execution_failed(prompt_id: str, data: dict[str, Any]) -> ExecutionFailedError:
    return ExecutionFailedError(
        prompt_id,
        _str_or_none(data.get("node_id")),
        data.get("node_type"),
        str(data.get("exception_type", "Error")),
        str(data.get("exception_message", "")),
        data.get("traceback"),
    )


def _json_or_none(response: EngineResponse) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
