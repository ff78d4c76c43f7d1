"""Build one app's form (a gr.Blocks) from its latest AppSpec."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr

from app.auth.web import WebAuth, key_id_of
from app.forms.components import Field, collect, make_fields
from app.forms.runner import RunView, follow_run
from app.services import Services
from publisher import AppSpec

_IMAGE_KINDS = ("image", "video")


def build_form(services: Services, *, slug: str, name: str, description: str, spec: AppSpec,
               version: int, auth: WebAuth | None = None) -> gr.Blocks:
    """`auth`: the server's login, to record a logged-in visitor's API key with their runs. (A Gradio handler's
    request belongs to the mounted Gradio app, whose state does not hold the main app's WebAuth.)"""
    kinds = {o.kind for o in spec.outputs}
    with gr.Blocks(title=name, analytics_enabled=False) as form:
        gr.Markdown(f"# {name}", elem_id="app-title")
        if description:
            gr.Markdown(description, elem_id="app-description")
        run_id = gr.State(None)
        with gr.Row(equal_height=False):
            with gr.Column(scale=5):
                fields: list[Field] = make_fields(spec.inputs)
                if not fields:
                    gr.Markdown("This app takes no inputs: press Run.")
                with gr.Row():
                    run_button = gr.Button("Run", variant="primary", elem_id="run-button", scale=3)
                    cancel_button = gr.Button("Cancel", variant="stop", elem_id="cancel-button", scale=1)
            with gr.Column(scale=6):
                status = gr.Markdown("", elem_id="run-status", elem_classes="status-line")
                preview = gr.Image(label="Live preview", visible=False, interactive=False, height=320,
                                   elem_id="live-preview")
                gallery = gr.Gallery(label="Outputs", columns=2, height="auto", elem_id="outputs",
                                     visible=bool(kinds & set(_IMAGE_KINDS)) or not kinds, interactive=False)
                audio = gr.Audio(label="Audio", visible=False, interactive=False, elem_id="audio-output")
                other = gr.File(label="Files", file_count="multiple", visible=False, interactive=False)
        gr.Markdown(f"<small>Version {version} · API: <code>POST /api/apps/{slug}/run</code> · "
                    f"<a href='/api/apps/{slug}/openapi.json'>OpenAPI</a></small>")

        components = [c for f in fields for c in f.components]

        # Inputs as a set: the handler gets {component: value}, so its signature can name the request and
        # the progress tracker (Gradio injects those by annotation; it cannot after *args).
        async def run(data: dict[Any, Any], request: gr.Request,
                      progress: gr.Progress = gr.Progress()) -> AsyncIterator[tuple[Any, ...]]:  # noqa: B008
            try:
                values, files = collect(fields, [data[c] for c in components])
            except OSError as exc:
                yield None, f"✗ An uploaded file could not be read: {exc}", gr.skip(), gr.skip(), gr.skip(), \
                    gr.skip()
                return
            progress(0, desc="submitting")
            key_id = await asyncio.to_thread(key_id_of, auth, request)  # may read the key from the database
            async for view in follow_run(services, slug=slug, values=values, files=files, api_key_id=key_id):
                yield _render(view, progress)

        def _render(view: RunView, progress: gr.Progress) -> tuple[Any, ...]:
            if view.progress is not None and not view.done:
                progress(view.progress[0], desc=view.progress[1])
            if not view.done:
                return (view.run_id, view.status or gr.skip(),
                        gr.update(value=view.preview, visible=True) if view.preview is not None else gr.skip(),
                        gr.skip(), gr.skip(), gr.skip())
            media = [path for path, kind in view.outputs if kind in _IMAGE_KINDS]
            sounds = [path for path, kind in view.outputs if kind == "audio"]
            rest = [path for path, kind in view.outputs if kind not in (*_IMAGE_KINDS, "audio")]
            return (None, view.status, gr.update(visible=False), gr.update(value=media or None),
                    gr.update(value=sounds[0] if sounds else None, visible=bool(sounds)),
                    gr.update(value=rest or None, visible=bool(rest)))

        async def cancel(current: str | None) -> str:
            if not current:
                return gr.skip()
            await services.runs.cancel(current)
            return "Cancelling…"

        run_button.click(lambda: ([], "Submitting…"), outputs=[gallery, status], queue=False,
                         show_progress="hidden").then(
            run, inputs=set(components), outputs=[run_id, status, preview, gallery, audio, other],
            concurrency_limit=None, show_progress_on=[gallery], api_name="run")
        cancel_button.click(cancel, inputs=[run_id], outputs=[status], concurrency_limit=None,
                            show_progress="hidden", api_name="cancel")
    return form
