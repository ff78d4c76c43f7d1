"""Typed failures of a ComfyUI engine, each carrying what a user needs to fix the cause."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ComfyError(Exception):
    """Base class of every failure reported by the ComfyUI client."""


class EngineUnavailableError(ComfyError):
    """The engine could not be reached at all."""


class EngineRequestError(ComfyError):
    """The engine answered an HTTP request with an unexpected status."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        self.method, self.path, self.status, self.body = method, path, status, body
        super().__init__(f"{method} {path} answered HTTP {status}: {body[:500]}")


@dataclass(frozen=True)
class NodeProblem:
    """One entry of the engine's `node_errors`: which node, which input, what is wrong."""

    node_id: str
    node_type: str | None
    input_name: str | None
    type: str
    message: str
    details: str

    def __str__(self) -> str:
        where = f"node {self.node_id}" + (f" ({self.node_type})" if self.node_type else "")
        if self.input_name:
            where += f", input '{self.input_name}'"
        detail = f": {self.details}" if self.details and self.details not in self.message else ""
        return f"{where}: {self.message}{detail}"


class PromptValidationError(ComfyError):
    """`POST /prompt` refused the workflow (HTTP 400). Keeps the engine's `node_errors` whole."""

    def __init__(self, error: dict[str, Any], node_errors: dict[str, Any]) -> None:
        self.error = error
        self.node_errors = node_errors
        self.problems = _node_problems(node_errors)
        self.type = str(error.get("type", ""))
        self.message = str(error.get("message", "the engine refused the workflow"))
        lines = [f"The engine refused the workflow: {self.message}"]
        if error.get("details") and not self.problems:
            lines[0] += f" ({error['details']})"
        lines += [f"  - {problem}" for problem in self.problems]
        super().__init__("\n".join(lines))


def _node_problems(node_errors: dict[str, Any]) -> list[NodeProblem]:
    problems = []
    for node_id, entry in node_errors.items():
        for err in entry.get("errors", []):
            extra = err.get("extra_info") or {}
            problems.append(
                NodeProblem(
                    node_id=str(node_id),
                    node_type=entry.get("class_type"),
                    input_name=extra.get("input_name"),
                    type=str(err.get("type", "")),
                    message=str(err.get("message", "")),
                    details=str(err.get("details", "")),
                )
            )
    return problems


class ExecutionFailedError(ComfyError):
    """A node raised while the workflow ran (the engine's `execution_error`)."""

    def __init__(
        self,
        prompt_id: str,
        node_id: str | None,
        node_type: str | None,
        exception_type: str,
        message: str,
        traceback: list[str] | None = None,
    ) -> None:
        self.prompt_id, self.node_id, self.node_type = prompt_id, node_id, node_type
        self.exception_type, self.message = exception_type, message
        self.traceback = traceback or []
        where = f"node {node_id} ({node_type})" if node_id else "the engine"
        super().__init__(f"{where} failed: {exception_type}: {message.strip()}")


class RunInterruptedError(ComfyError):
    """The run was interrupted (by us or by someone using the engine) before it finished."""

    def __init__(self, prompt_id: str, node_id: str | None = None, *, queued: bool = False) -> None:
        self.prompt_id, self.node_id, self.queued = prompt_id, node_id, queued
        if queued:
            super().__init__(f"Run {prompt_id} was removed from the engine's queue before it started.")
        else:
            at = f" at node {node_id}" if node_id else ""
            super().__init__(f"Run {prompt_id} was interrupted{at}.")


class RunTimeoutError(ComfyError, TimeoutError):
    """A wait on the engine went past its limit."""

    def __init__(self, prompt_id: str | None, what: str, seconds: float) -> None:
        self.prompt_id, self.what, self.seconds = prompt_id, what, seconds
        run = f"run {prompt_id}: " if prompt_id else ""
        super().__init__(f"{run}{what} did not finish within {seconds:g} s.")


class EngineConnectionLostError(ComfyError):
    """The engine went away during a run and did not come back in time."""


class PromptLostError(ComfyError):
    """The engine no longer knows the prompt (it restarted mid-run): the run's work is gone."""
