"""A form's run: submitted through the same RunService as the REST API, then followed by its events so the
page shows the engine's step progress, the node at work, live previews, the outputs or a readable error."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from app.auth.keys import Caller
from app.errors import AppError, NotFound, explain
from app.runs.inputs import GivenValues
from app.runs.redact import scrub_paths
from app.runs.submission import AppRef, Submission
from app.services import Services
from db import crud_runs
from db.models import Run
from publisher import AppSpec
from runtimes.contract import FINAL_STATUSES, QueueFullError
from runtimes.inputs import InputProblems

_POLL_S = 1.0  # how often a quiet run's state is read again (an event may have been missed)


@dataclass
class RunView:
    """What the page shows at one moment of a run."""

    run_id: str | None = None
    status: str = ""  # Markdown
    progress: tuple[float, str] | None = None  # (fraction 0..1, description)
    preview: Image.Image | None = None
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (path, kind)
    done: bool = False


def describe_error(error: dict[str, Any] | None) -> str:
    """A run's error record as a sentence a person can act on (never a traceback)."""
    if not error:
        return "The run failed without a reason."
    message = str(scrub_paths(error.get("message")) or error.get("type") or "unknown error").strip().splitlines()[0]
    where = ""
    if error.get("node_id"):
        where = f" (node {error['node_id']}" + (f", {error['node_type']}" if error.get("node_type") else "") + ")"
    return f"{message}{where}"


def describe_problems(problems: list[dict[str, Any]]) -> str:
    lines = []
    for p in problems:
        allowed = f" — allowed: {', '.join(map(str, p['allowed'][:8]))}" if p.get("allowed") else ""
        lines.append(f"- **{p['input']}**: {p['message']}{allowed}")
    return "\n".join(lines)


def _node_name(spec: AppSpec, node_id: str | None) -> str:
    if not node_id:
        return ""
    node = spec.workflow.get(str(node_id)) or {}
    title = (node.get("_meta") or {}).get("title") or node.get("class_type") or ""
    return f"{title} (node {node_id})" if title else f"node {node_id}"


def _timings(run: Run) -> str:
    parts = []
    if run.queue_ms is not None:
        parts.append(f"queued {run.queue_ms / 1000:.1f} s")
    if run.exec_ms is not None:
        parts.append(f"ran {run.exec_ms / 1000:.1f} s")
    return ", ".join(parts)


def _seed_note(spec: AppSpec, run: Run) -> str:
    applied = run.applied or run.inputs or {}
    seeds = [f"{i.label or i.name} {applied[i.name]}" for i in spec.inputs if i.type == "seed" and i.name in applied]
    return f" · {', '.join(seeds)}" if seeds else ""


async def follow_run(services: Services, *, slug: str, values: dict[str, Any],
                     files: dict[str, tuple[str, bytes]], api_key_id: int | None = None) -> AsyncIterator[RunView]:
    """Submit a run of the app's latest version (as the visitor the web login let in) and yield the page's state
    until the run ends."""
    runs = services.runs
    try:
        accepted = await runs.submit(Submission(AppRef(slug), GivenValues(values, files),
                                                caller=Caller(key_id=api_key_id, admin=False, web=True)))
    except NotFound:
        yield RunView(status=f"✗ The app '{slug}' is no longer published.", done=True)
        return
    except InputProblems as exc:
        yield RunView(status="✗ Some inputs do not fit:\n" + describe_problems(exc.problems), done=True)
        return
    except QueueFullError:
        yield RunView(status="✗ The queue is full right now; try again in a minute.", done=True)
        return
    except AppError as exc:  # e.g. no engine can run it
        yield RunView(status=f"✗ {explain(exc)}", done=True)
        return
    run_id, spec = accepted.run.id, accepted.spec
    queue = runs.subscribe(run_id)  # then read the state: no event falls in between
    try:
        position = runs.position(run_id)
        waiting = "Waiting for the engine to start…" if services.engines.state == "starting" else "Queued"
        yield RunView(run_id=run_id, status=f"{waiting}" + (f" (position {position})" if position else ""),
                      progress=(0.0, "queued"))
        while runs.is_in_flight(run_id):
            try:
                event = await asyncio.wait_for(queue.get(), _POLL_S)
            except TimeoutError:
                continue
            view = _on_event(spec, run_id, event)
            if view is not None:
                yield view
            if event["event"] == "finished":
                break
    finally:
        runs.unsubscribe(run_id, queue)
    yield await asyncio.to_thread(final_view, services, spec, run_id)


def _on_event(spec: AppSpec, run_id: str, event: dict[str, Any]) -> RunView | None:
    match event["event"]:
        case "started":
            return RunView(run_id=run_id, status="Running…", progress=(0.0, "starting"))
        case "progress":
            value, maximum = event.get("value") or 0, event.get("max") or 0
            node = _node_name(spec, event.get("node"))
            if maximum:
                desc = f"{node}: step {value}/{maximum}" if node else f"step {value}/{maximum}"
                return RunView(run_id=run_id, status=f"Running {node}…",
                               progress=(min(1.0, value / maximum), desc))
            return RunView(run_id=run_id, status=f"Running {node}…", progress=(0.0, node or "running"))
        case "preview":
            try:
                image = Image.open(io.BytesIO(base64.b64decode(event["data"])))
                image.load()
            except (OSError, ValueError, KeyError):
                return None  # a preview is a nicety: a broken one is skipped
            return RunView(run_id=run_id, preview=image)
        case "retrying":
            return RunView(run_id=run_id, status="The engine was lost; running again on another one…",
                           progress=(0.0, "queued again"))
    return None


def final_view(services: Services, spec: AppSpec, run_id: str) -> RunView:
    with services.sessions() as session:
        run = crud_runs.get_run(session, run_id=run_id)
        assert run is not None
        artifacts = crud_runs.artifacts_of(session, run_id=run_id)
    outputs = [(str(services.settings.data_dir / a.path), a.kind) for a in artifacts]
    timing = _timings(run)
    match run.status:
        case "succeeded":
            status = f"✓ Done ({timing}){_seed_note(spec, run)}" if timing else f"✓ Done{_seed_note(spec, run)}"
        case "cancelled":
            status = "Cancelled."
        case "timed_out":
            status = f"✗ Timed out after {spec.timeout_s:.0f} s: {describe_error(run.error)}"
        case status_ if status_ in FINAL_STATUSES:
            status = f"✗ {describe_error(run.error)}"
        case _:
            status = f"{run.status}"
    return RunView(run_id=run_id, status=status, outputs=outputs, done=True)
