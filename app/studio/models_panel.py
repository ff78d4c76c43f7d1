"""The studio's "Fetch missing models" button with a progress bar, under the workflow being published (Publish tab)
and under the chosen app (Apps tab): it starts the same background fetch as the API and follows it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import gradio as gr

from app.errors import AppError, explain
from app.models.jobs import FetchJob
from app.models.needs import needs_of_app
from app.services import Services
from publisher.models import ModelRef
from runtimes.models.needs import NeededModel, needed_models

POLL_S = 0.5
_MARK = {"queued": "…", "fetching": "⇣", "fetched": "✓", "present": "✓", "failed": "✗"}

# What a tab's value (the analysis of the workflow, an app's slug) needs: a label for the job and the files.
NeedsOf = Callable[[Any], tuple[str, list[NeededModel]]]


def needs_markdown(needs: list[NeededModel]) -> str:
    if not needs:
        return ""
    missing = [n for n in needs if not n.present]
    if not missing:
        return f"✓ All {len(needs)} model file(s) are in the engine's models folder."
    return f"**{len(missing)} of {len(needs)} model file(s) missing:**\n" + "\n".join(
        f"- `{n.key}`: {n.hint()}" for n in missing)


def job_markdown(job: FetchJob) -> str:
    lines = []
    for entry in job.files:
        size = f" ({entry.done / 1e6:.1f} / {entry.total / 1e6:.1f} MB)" if entry.total else ""
        lines.append(f"- {_MARK[entry.state]} `{entry.folder}/{entry.filename}`: {entry.state}{size}"
                     + (f" — {entry.error}" if entry.error else ""))
    head = ("✗ Some model files could not be fetched:" if job.failed else "✓ Model files fetched:") \
        if job.finished else "Fetching model files…"
    return "\n".join([f"**{head}**", *lines])


def build(services: Services, source: gr.components.Component, needs_of: NeedsOf, elem_id: str) -> None:
    """The button and its status under `source` (whose value `needs_of` reads); the status says what is missing
    whenever `source` changes."""
    button = gr.Button("Fetch missing models", size="sm", elem_id=f"{elem_id}-button")
    status = gr.Markdown(elem_id=f"{elem_id}-status")

    async def describe(value: Any) -> str:
        if not value:
            return ""
        try:
            return needs_markdown((await asyncio.to_thread(needs_of, value))[1])
        except AppError as exc:
            return "✗ " + explain(exc)

    async def fetch(value: Any, progress: gr.Progress = gr.Progress()) -> AsyncIterator[str]:  # noqa: B008
        if not value:
            yield "✗ Nothing to fetch for yet."
            return
        try:
            label, needs = await asyncio.to_thread(needs_of, value)
        except AppError as exc:
            yield "✗ " + explain(exc)
            return
        if all(n.present for n in needs):
            yield needs_markdown(needs) or "This workflow names no model files."
            return
        job: FetchJob | None = services.models.start(label, needs)
        while job is not None:
            done = sum(f.done for f in job.files)
            total = sum(f.total or 0 for f in job.files)
            fetching = next((f for f in job.files if f.state == "fetching"), None)
            progress(done / total if total else 0.0,
                     desc=f"{fetching.folder}/{fetching.filename}" if fetching else "model files")
            yield job_markdown(job)
            if job.finished:
                return
            await asyncio.sleep(POLL_S)
            job = services.models.get(job.id)

    source.change(describe, inputs=[source], outputs=[status], show_progress="hidden")
    button.click(fetch, inputs=[source], outputs=[status], concurrency_limit=None, show_progress_on=[status])


def workflow_needs(services: Services) -> NeedsOf:
    """For the Publish tab: the files of the analyzed workflow (its analysis' models, with the file's sources)."""
    def needs_of(found: dict[str, Any]) -> tuple[str, list[NeededModel]]:
        refs = [ModelRef(**m) for m in found.get("models", [])]
        return "workflow", needed_models(refs, services.models.models_dir)
    return needs_of


def app_needs(services: Services) -> NeedsOf:
    """For the Apps tab: the files of the chosen app's latest version."""
    def needs_of(slug: str) -> tuple[str, list[NeededModel]]:
        with services.sessions() as session:
            return slug, needs_of_app(session, slug, services.models.models_dir)
    return needs_of
