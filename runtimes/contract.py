"""The run contract between the app and every runtime (the local worker pool, a Modal deployment, those to come).

One vocabulary, defined once: a run's statuses, what a runtime is asked to run (`RunRequest`), what it reports
while it runs (`RunUpdate`), what a run produced (`RunOutcome`), and the error record a failed run keeps. A
runtime is anything that implements `Runner`: the app's run service hands it requests and cancels, and follows
what it reports through one callback, whichever runtime it is.

No database or web code here (the same words travel into a serverless container).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Protocol

from publisher import InputBinding, Workflow


class RunStatus(StrEnum):
    """queued -> running -> succeeded | failed | cancelled | timed_out (running -> queued again when an engine
    is lost and the run is retried)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def final(self) -> bool:
        return self in FINAL_STATUSES


# Plain strings, not members: drivers bind them as text without relying on how they adapt enums.
FINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled", "timed_out"})

# What a runtime reports about a run: its start, its progress, preview frames, a retry after a lost engine, and its
# end (a final status).
UpdateKind = Literal["started", "progress", "preview", "succeeded", "failed", "cancelled", "timed_out", "retrying"]

# An input file: (file name, its bytes or the path they are stored at). The app queues runs with paths, so a long
# queue holds no upload bytes in memory; they are read when the run starts.
Upload = tuple[str, bytes | Path]


async def read_upload(data: bytes | Path) -> bytes:
    return data if isinstance(data, bytes) else await asyncio.to_thread(data.read_bytes)


@dataclass(frozen=True)
class RunRequest:
    """Everything one run needs; built by the app from a published version and a caller's values."""

    run_id: str  # also the engine prompt id and the name of the run's input/output subfolder
    workflow: dict[str, Any]  # API-format prompt as published
    bindings: tuple[InputBinding, ...]
    values: dict[str, Any]  # already validated by the app; image inputs come as uploads
    uploads: dict[str, Upload] = field(default_factory=dict)  # binding name -> (filename, bytes or path)
    output_nodes: tuple[str, ...] = ()  # published output node ids; empty = every output
    timeout_s: float = 600.0
    keep_metadata: bool = False  # outputs keep the workflow the engine embeds in them (PNG text, EXIF, media tags)
    # `workflow` already loaded (the app keeps one per published version), or None: loaded per run.
    loaded: Workflow | None = field(default=None, repr=False, compare=False)
    # The engine's per-prompt `extra_data` (a Comfy API v2 job's `api_key_comfy_org`, which its API nodes send to
    # Comfy.org): a secret, never persisted or logged, so a run the app requeues after a restart runs without it.
    extra_data: dict[str, str] = field(default_factory=dict, repr=False, compare=False)


OutputFileKind = Literal["image", "video", "audio", "file"]


@dataclass(frozen=True)
class RunOutput:
    node_id: str
    filename: str
    kind: OutputFileKind
    mime: str
    data: bytes = field(repr=False)


@dataclass
class RunOutcome:
    run_id: str
    applied: dict[str, Any]  # values as applied, drawn seeds included
    outputs: list[RunOutput]
    exec_ms: float | None  # time on the engine from execution_start to the end; None if it never started


ErrorRecord = dict[str, Any]


def run_error(type: str, message: str, *, node_id: str | None = None, node_type: str | None = None,
              input: str | None = None, details: Any = None) -> ErrorRecord:
    """The error record a failed (or cancelled) run keeps: what kind of failure, a message for people, where
    (node and input, when known) and machine-readable details."""
    return {"type": type, "message": message, "node_id": node_id, "node_type": node_type, "input": input,
            "details": details}


def cancelled_error() -> ErrorRecord:
    return run_error("cancelled", "Cancelled by request.")


@dataclass
class RunUpdate:
    run_id: str
    kind: UpdateKind
    worker: str | None = None
    outcome: RunOutcome | None = None
    error: ErrorRecord | None = None  # run_error(...)
    progress: dict[str, Any] | None = None  # {node, value, max}
    preview: tuple[str, bytes] | None = field(default=None, repr=False)  # (mime, bytes)
    at: float = field(default_factory=time.time)


UpdateCallback = Callable[[RunUpdate], Awaitable[None]]
CancelOutcome = Literal["dequeued", "interrupted", "not_found"]


class QueueFullError(Exception):
    """The queue holds its maximum of runs already; `retry_after` (whole seconds) estimates when one leaves."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Runner(Protocol):
    """Where runs go. A runner reports every change of a run through the update callback it was built with, and
    keeps no records of its own: the app stores them."""

    def submit(self, request: RunRequest, *, earlier_losses: Sequence[str] = ()) -> int | None:
        """Take a run; its queue position here, or None where the runner keeps no queue. `earlier_losses`:
        attempts of this run lost before it came here (a previous app process), counted against its retry limit.
        May raise QueueFullError."""
        ...

    async def cancel(self, run_id: str) -> CancelOutcome:
        """A queued run never starts, a running one is stopped; both end with a "cancelled" update. "not_found"
        also answers for a run that is finishing right now: its own end stands."""
        ...

    def position(self, run_id: str) -> int | None:
        """1-based position of a queued run, None when it is not queued here."""
        ...

    def queued_count(self) -> int: ...

    def running(self) -> dict[str, str]:
        """run id -> the worker running it."""
        ...
