"""Publish: drop a workflow -> summary -> inputs table -> live form preview -> test run -> publish."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
from sqlalchemy.orm import Session

from app.editor.drafts import DraftStore
from app.errors import AppError, explain
from app.forms.components import Field, collect, make_fields
from app.forms.runner import describe_error, describe_problems
from app.publish import service as publishing
from app.publish.service import PublishInput, PublishRequest
from app.runs.inputs import parse_values
from app.services import Services
from app.studio import models_panel
from app.studio.summary import (
    COLUMNS,
    DATATYPES,
    EDITABLE,
    app_mode_outputs,
    candidate_rows,
    describe_changes,
    editor_differences_markdown,
    rows_to_inputs,
    summary_markdown,
    warnings_markdown,
    with_app_mode_heights,
)
from db import crud_apps
from db.models import AppVersion
from publisher import AppSpec, WorkflowFormatError
from publisher.prompt_compare import prompt_differences
from runtimes.comfy import events as ev
from runtimes.comfy.client import ComfyClient
from runtimes.contract import RunRequest
from runtimes.execute import error_record, execute_run
from runtimes.inputs import InputProblems

MAX_WORKFLOW_BYTES = 20 * 2**20


def _read_upload(path: str) -> Any:
    data = Path(path).read_bytes()
    if len(data) > MAX_WORKFLOW_BYTES:
        raise WorkflowFormatError(f"the file is {len(data) // 2**20} MiB; a workflow is JSON of a few KiB")
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WorkflowFormatError(f"{Path(path).name} is not JSON ({exc}); upload the .json file ComfyUI saves or "
                                  "exports (Workflow > Export (API))") from None


def _error(message: str) -> str:
    return f"### ✗ This file cannot be published\n{message}"


def _name_of(file_name: str) -> str:
    """An app name from a workflow's file name: "poster_maker-v2.json" -> "Poster maker v2"."""
    return Path(file_name).stem.replace("_", " ").replace("-", " ").strip().capitalize()


def build(services: Services) -> tuple[Callable[..., Any], list[gr.components.Component]]:
    """Lay out the tab; returns what fills it when the studio opens with a draft from the editor (?draft=ID)."""
    analysis = gr.State(None)  # the analyze result, workflow included
    draft = gr.State(None)  # the AppSpec the table describes, as a dict (None while it has problems)
    with gr.Row(equal_height=False):
        with gr.Column(scale=4):
            upload = gr.File(label="1. Drop a workflow file (ComfyUI: Save, or Export (API))", file_types=[".json"],
                             type="filepath", elem_id="workflow-file", height=140)
            gr.Markdown("…or build it in the [ComfyUI editor](/studio/editor) and choose **File › Publish…** there "
                        "(for a ComfyUI of your own: `python launch.py install-extension --comfyui-path DIR`).",
                        elem_id="open-editor")
            error = gr.Markdown(elem_id="publish-error")
            summary = gr.Markdown(elem_id="workflow-summary")
            models_panel.build(services, analysis, models_panel.workflow_needs(services), "publish-models")
        with gr.Column(scale=7):
            gr.Markdown("### 2. Choose the inputs people can change\nTick an input to put it on the form; edit its "
                        "label, default, range or choices (separated by ` | `); a text's Max is its maximum length. "
                        "Suggested inputs are ticked.")
            table = gr.Dataframe(headers=COLUMNS, datatype=DATATYPES, type="array", interactive=True,
                                 static_columns=list(range(EDITABLE, len(COLUMNS))), elem_id="inputs-table",
                                 max_height=420, wrap=True, value=[], show_search="none")
            table_problems = gr.Markdown(elem_id="table-problems")
    gr.Markdown("### 3. Preview of the form")
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, variant="panel"):
            @gr.render(inputs=[draft])
            def preview(spec_dict: dict[str, Any] | None) -> None:
                if not spec_dict:
                    gr.Markdown("*The form appears here once a workflow is loaded.*")
                    return
                spec = AppSpec.from_dict(spec_dict)
                if not spec.inputs:
                    gr.Markdown("*No input is ticked: the form will only have a Run button.*")
                fields = make_fields(spec.inputs, key="preview")
                components = [c for f in fields for c in f.components]
                button = gr.Button("Test run with these values", variant="primary", key="preview-run",
                                   elem_id="test-run")

                # Inputs as a set, so the handler can also name the progress tracker (see forms/page.py).
                async def test_with(data: dict[Any, Any] | None = None,  # None: a form without inputs
                                    progress: gr.Progress = gr.Progress()) -> tuple[str, list[str] | None]:  # noqa: B008
                    return await on_test(spec, fields, [(data or {})[c] for c in components], progress)

                button.click(test_with, inputs=set(components), outputs=[test_status, test_gallery],
                             concurrency_limit=None, show_progress_on=[test_gallery])
        with gr.Column(scale=5):
            gr.Markdown("The test run uses the values in the preview (nothing is recorded).")
            test_status = gr.Markdown(elem_id="test-status")
            test_gallery = gr.Gallery(label="Test output", columns=2, height=240, interactive=False,
                                      elem_id="test-output")
    gr.Markdown("### 4. Publish")
    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            name = gr.Textbox(label="Name", placeholder="e.g. Poster maker", elem_id="app-name")
            description = gr.Textbox(label="Description (shown on the form)", lines=2, elem_id="app-description")
            public = gr.Checkbox(label="Public: anyone with the link may run it (else an API key or the studio "
                                       "login is needed)", value=True, elem_id="app-public")
            publish_button = gr.Button("Publish", variant="primary", elem_id="publish-button", interactive=False)
        with gr.Column(scale=5):
            changes = gr.Markdown(elem_id="publish-changes")
            result = gr.Markdown(elem_id="publish-result")

    outputs = [error, analysis, table, summary, table_problems, draft, publish_button, name]
    empty = (None, [], "", "", None, gr.update(interactive=False), gr.skip())

    async def show(raw: Any, app_name: str, source: str = "",
                   editor_prompt: dict[str, Any] | None = None) -> tuple[Any, ...]:
        try:
            catalog = await services.catalog.get()
            found = publishing.analyze(raw, catalog)
        except WorkflowFormatError as exc:
            return (_error(str(exc)), *empty)
        except AppError as exc:
            return (_error(f"The engine is not ready: {exc.detail}"), *empty)
        warnings = warnings_markdown(found)
        if editor_prompt is not None:
            source += editor_differences_markdown(prompt_differences(found["workflow"], editor_prompt, catalog))
        return (warnings, found, candidate_rows(found), source + summary_markdown(found), "", None,
                gr.update(interactive=not warnings), app_name)

    async def on_upload(path: str | None) -> tuple[Any, ...]:
        if not path:
            return ("", *empty)
        try:
            raw = await asyncio.to_thread(_read_upload, path)
        except WorkflowFormatError as exc:
            return (_error(str(exc)), *empty)
        return await show(raw, _name_of(path))

    async def from_editor(request: gr.Request) -> tuple[Any, ...]:
        """The studio opened as /studio/?draft=ID by the editor's File > Publish…: that graph, analyzed."""
        draft_id = request.query_params.get("draft") if request is not None else None
        if not draft_id:
            return tuple(gr.skip() for _ in outputs)
        sent = await asyncio.to_thread(DraftStore(services.settings.editor_drafts_dir).load, draft_id)
        if sent is None:
            return (_error("The workflow this link names is not here (the editor's drafts are kept a week): "
                           "choose File › Publish… in the ComfyUI editor again."), *empty)
        label = " ".join(sent.name.replace("`", "'").split())[:120] or "an unsaved workflow"
        return await show(sent.workflow, _name_of(sent.name), f"From the ComfyUI editor: `{label}`\n\n", sent.prompt)

    async def on_table(rows: list[list[Any]], found: dict[str, Any] | None, app_name: str) -> tuple[Any, ...]:
        if not found:
            return None, "", ""
        inputs, problems = rows_to_inputs(rows)
        inputs = with_app_mode_heights(inputs, found)
        if problems:
            return None, "✗ " + "\n\n✗ ".join(problems), ""
        request = PublishRequest(name=app_name or "draft", workflow=found["workflow"],
                                 inputs=[PublishInput(**i) for i in inputs], outputs=app_mode_outputs(found))
        try:
            spec = publishing.build_spec(request, await services.catalog.get())
        except publishing.PublishError as exc:
            return None, "✗ " + "\n\n✗ ".join(exc.problems or [exc.message]), ""
        return spec.to_dict(), "", await asyncio.to_thread(_changes, app_name, spec)

    def _changes(app_name: str, spec: AppSpec) -> str:
        slug = publishing.slug_of(app_name or "")
        if not slug:
            return ""
        with services.sessions() as session:
            existing = crud_apps.get_app(session, slug=slug)
            version = crud_apps.get_version(session, app_id=existing.id) if existing else None
        if version is None:
            return f"A new app at `/apps/{slug}/`."
        old = AppSpec.from_dict(version.spec)
        return f"**'{slug}' exists: publishing makes version {version.number + 1}.** Changes:\n" + \
            describe_changes(old, spec)

    async def on_test(spec: AppSpec, fields: list[Field], raw: list[Any],
                      progress: gr.Progress) -> tuple[str, list[str] | None]:
        """The draft on the engine with the preview's values, checked as a published form's are; not queued,
        not recorded (the draft is no app yet)."""
        run_id = f"test-{uuid.uuid4().hex}"
        try:
            values, files = collect(fields, raw)
            inputs = parse_values(spec, values, files, services.settings.image_limits)
        except InputProblems as exc:
            return "✗ Some inputs do not fit:\n" + describe_problems(exc.problems), None
        except OSError as exc:
            return f"✗ An uploaded file could not be read: {exc}", None

        def on_event(event: ev.EngineEvent) -> None:
            if isinstance(event, ev.Progress) and event.max:
                progress(min(1.0, event.value / event.max), desc=f"node {event.node}: step {event.value}/{event.max}")
            elif isinstance(event, ev.Executing) and event.node:
                progress(0, desc=f"node {event.node}")

        progress(0, desc="waiting for the engine")
        try:
            catalog = await services.catalog.get()
            async with ComfyClient(services.catalog.engine_url()) as client:
                outcome = await execute_run(client, catalog, RunRequest(
                    run_id=run_id, workflow=spec.workflow, bindings=spec.inputs, values=inputs.values,
                    uploads=inputs.uploads, output_nodes=spec.output_nodes, timeout_s=min(spec.timeout_s, 300)),
                    on_event=on_event)
        except AppError as exc:
            return f"✗ {exc.detail}", None
        except Exception as exc:  # shown to the publisher as the engine's reason, never a traceback
            return f"✗ The test run failed: {describe_error(error_record(exc))}", None
        folder = services.settings.test_runs_dir / run_id
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for index, output in enumerate(outcome.outputs):
            target = folder / f"{index:02d}-{Path(output.filename).name}"
            target.write_bytes(output.data)
            paths.append(str(target))
        seconds = f" in {outcome.exec_ms / 1000:.1f} s" if outcome.exec_ms else ""
        applied = ", ".join(f"{k}={v!s:.40}" for k, v in outcome.applied.items() if k not in inputs.uploads)
        return (f"✓ Test run finished{seconds} with {len(paths)} output(s)."
                + (f"\n\nInputs as applied: `{applied}`" if applied else "")), paths

    async def on_publish(spec_dict: dict[str, Any] | None, found: dict[str, Any] | None, rows: list[list[Any]],
                         app_name: str, text: str, is_public: bool) -> tuple[str, str]:
        if not found:
            return "✗ Upload a workflow first.", gr.skip()
        if not app_name.strip():
            return "✗ Give the app a name (it becomes the link: /apps/<name>/).", gr.skip()
        inputs, problems = rows_to_inputs(rows)
        inputs = with_app_mode_heights(inputs, found)
        if problems or not spec_dict:
            return "✗ Fix the inputs table first:\n" + "\n".join(f"- {p}" for p in problems), gr.skip()
        slug = publishing.slug_of(app_name)
        def latest(session: Session) -> AppVersion | None:
            existing = crud_apps.get_app(session, slug=slug)
            return crud_apps.get_version(session, app_id=existing.id) if existing else None

        previous = await services.db(latest)
        request = PublishRequest(name=app_name.strip(), description=text.strip(), workflow=found["workflow"],
                                 inputs=[PublishInput(**i) for i in inputs], outputs=app_mode_outputs(found),
                                 public=is_public)
        try:
            catalog = await services.catalog.get()
            app, version = await publishing.publish(services, request, catalog)
            slug, number = app.slug, version.number
            warnings = publishing.model_warnings(services, slug, version)
        except AppError as exc:
            return "✗ " + explain(exc), gr.skip()
        changed = ""
        if previous is not None:
            diff = describe_changes(AppSpec.from_dict(previous.spec), AppSpec.from_dict(spec_dict))
            changed = f"\n\n**What changed since version {previous.number}:**\n{diff}"
        return (f"### ✓ Published '{app_name.strip()}' (version {number})\n"
                f"- Form: [/apps/{slug}/](/apps/{slug}/)\n- API: `POST /api/apps/{slug}/run` "
                f"([OpenAPI](/api/apps/{slug}/openapi.json))\n- The Apps tab has snippets and the share link."
                + "".join(f"\n- ⚠ {warning}" for warning in warnings) + changed), ""

    upload.change(on_upload, inputs=[upload], outputs=outputs)
    table.change(on_table, inputs=[table, analysis, name], outputs=[draft, table_problems, changes])
    name.blur(on_table, inputs=[table, analysis, name], outputs=[draft, table_problems, changes])
    publish_button.click(on_publish, inputs=[draft, analysis, table, name, description, public],
                         outputs=[result, changes], concurrency_limit=None)
    return from_editor, outputs
