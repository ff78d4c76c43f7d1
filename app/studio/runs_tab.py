"""Runs: history with status, thumbnails, inputs (seed included), queue and execution times, errors with the
failing node; re-run with the same inputs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import gradio as gr
from sqlalchemy.orm import Session

from app.auth.keys import Caller
from app.errors import AppError, explain
from app.forms.runner import describe_error
from app.runs.inputs import GivenValues
from app.runs.stored import rerun_inputs
from app.runs.submission import Submission
from app.runs.views import history
from app.services import Services
from db import crud_apps, crud_runs
from db.crud_apps import RunnableVersion
from db.models import App, AppVersion, Run
from runtimes.contract import QueueFullError
from runtimes.inputs import InputProblems

STUDIO = Caller(key_id=None, admin=True, web=True)  # the studio's own runs: behind its login, with no key

HISTORY = 50
COLUMNS = ["Run", "App", "Status", "Created", "Queue s", "Run s", "Inputs", "Error"]


def _seconds(ms: float | None) -> str:
    return f"{ms / 1000:.2f}" if ms is not None else ""


def _inputs(run: Run) -> str:
    values = run.applied or run.inputs or {}
    return ", ".join(f"{k}={'(file)' if isinstance(v, dict) else v!s:.40}" for k, v in values.items())


def build(services: Services) -> tuple[Callable[..., Any], list[gr.components.Component]]:
    """Lay out the tab; returns its loader (and what it fills), called when the tab opens."""
    with gr.Row():
        refresh = gr.Button("Refresh", size="sm", scale=0, elem_id="runs-refresh")
        gr.Markdown("Click a row for its details.")
    table = gr.Dataframe(headers=COLUMNS, type="array", interactive=False, elem_id="runs-table", wrap=True,
                         max_height=380)
    thumbs = gr.Gallery(label="Latest outputs", columns=8, height=150, interactive=False, elem_id="runs-thumbs",
                        preview=False, object_fit="contain")
    selected = gr.State(None)
    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            detail = gr.Markdown(elem_id="run-detail")
            rerun = gr.Button("Re-run with the same inputs", interactive=False, elem_id="rerun")
        with gr.Column(scale=5):
            outputs = gr.Gallery(label="Outputs of the selected run", columns=3, height=260, interactive=False)

    def recent() -> tuple[list[list[str]], list[tuple[str, str]]]:
        rows, pictures = [], []
        with services.sessions() as session:
            for run, files in history(session, limit=HISTORY):
                slug = services.runs.app_slug(session, run.app_id)
                error = describe_error(run.error) if run.status in ("failed", "timed_out") else ""
                rows.append([run.id, slug, run.status, run.created_at.strftime("%H:%M:%S"),
                             _seconds(run.queue_ms), _seconds(run.exec_ms), _inputs(run), error])
                for artifact in files[:1] if not _removed(run, "outputs") else []:
                    if artifact.mime.startswith("image/") and len(pictures) < 16:
                        pictures.append((str(services.settings.data_dir / artifact.path), f"{slug} · {run.id[:8]}"))
        return rows, pictures

    def details(rows: list[list[str]], event: gr.SelectData) -> tuple[Any, ...]:
        run_id = rows[event.index[0]][0]
        with services.sessions() as session:
            run = crud_runs.get_run(session, run_id=run_id)
            if run is None:
                return None, "Run not found.", gr.update(interactive=False), []
            app = session.get(App, run.app_id)
            version = session.get(AppVersion, run.version_id)
            files = [] if _removed(run, "outputs") else [
                str(services.settings.data_dir / a.path) for a in crud_runs.artifacts_of(session, run_id=run_id)]
        lines = [f"### Run `{run.id}`", f"**{app.name if app else '?'}** version {version.number if version else '?'}"
                 f" · **{run.status}** · worker {run.worker or '—'} · attempts {run.attempts}",
                 f"- queued {_seconds(run.queue_ms) or '—'} s · ran {_seconds(run.exec_ms) or '—'} s",
                 "- inputs (as applied, seed included):", "```json",
                 json.dumps(run.applied or run.inputs or {}, indent=2, default=str), "```"]
        for what, when in (run.files_removed or {}).items():
            lines.append(f"- its {what} files were removed by retention on {when[:16].replace('T', ' ')}")
        if run.error:
            lines += [f"**Error**: {describe_error(run.error)}"]
            if run.error.get("input"):
                lines.append(f"(input `{run.error['input']}`)")
        can_rerun = app is not None and app.deleted_at is None
        return run.id, "\n".join(lines), gr.update(interactive=can_rerun), files

    async def again(run_id: str | None) -> tuple[str, Any, Any]:
        if not run_id:
            return "Select a run first.", gr.skip(), gr.skip()
        def lookup(session: Session) -> tuple[Run | None, RunnableVersion | None]:
            run = crud_runs.get_run(session, run_id=run_id)
            app = session.get(App, run.app_id) if run else None
            if run is None or app is None or app.deleted_at is not None:
                return run, None
            return run, crud_apps.runnable_by_id(session, version_id=run.version_id)

        run, version = await services.db(lookup)
        if run is None or version is None:
            return "This run's app is no longer published.", gr.skip(), gr.skip()
        # Uploads as submitted (stored files); every other value as applied, so the seed drawn is used again.
        try:
            values, uploads = await asyncio.to_thread(rerun_inputs, run, services.settings.uploads_dir)
            accepted = await services.runs.submit(Submission(version, GivenValues(values, uploads), caller=STUDIO))
        except QueueFullError:
            return "The queue is full; try again later.", gr.skip(), gr.skip()
        except (AppError, InputProblems) as exc:
            return f"Could not run it again: {explain(exc) if isinstance(exc, AppError) else exc}", gr.skip(), \
                gr.skip()
        new = accepted.run
        await services.runs.wait(new.id, 60)
        rows, pictures = await asyncio.to_thread(recent)
        return f"Re-ran as `{new.id}` (same inputs, same seed).", rows, pictures

    async def load() -> tuple[Any, Any]:
        return await asyncio.to_thread(recent)

    refresh.click(load, outputs=[table, thumbs])
    table.select(details, inputs=[table], outputs=[selected, detail, rerun, outputs])
    rerun.click(again, inputs=[selected], outputs=[detail, table, thumbs], concurrency_limit=None)
    return load, [table, thumbs]


def _removed(run: Run, what: str) -> bool:
    """Whether retention (--keep-outputs / --keep-inputs) removed these files of the run."""
    return bool((run.files_removed or {}).get(what))
