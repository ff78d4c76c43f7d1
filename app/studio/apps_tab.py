"""Apps: each published app with its form link, API endpoint, versions, snippets and share link."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import gradio as gr

from app.services import Services
from app.studio import models_panel
from app.studio.snippets import snippets
from db import crud_apps
from publisher import AppSpec

_LANGUAGES = {"curl": "shell", "python (httpx)": "python", "python (requests)": "python",
              "javascript (fetch)": "javascript"}


def _base_url(request: gr.Request | None) -> str:
    host = request.headers.get("host") if request is not None else None
    return f"http://{host}" if host else "http://127.0.0.1:7860"


def build(services: Services) -> tuple[Callable[..., Any], list[gr.components.Component]]:
    """Lay out the tab; returns its loader (and what it fills), called when the tab opens."""
    with gr.Row():
        chooser = gr.Dropdown(label="App", choices=[], interactive=True, scale=4, elem_id="apps-chooser")
        refresh = gr.Button("Refresh", scale=1, size="sm")
    details = gr.Markdown(elem_id="app-details")
    models_panel.build(services, chooser, models_panel.app_needs(services), "app-models")
    codes = []
    with gr.Tabs():
        for title, language in _LANGUAGES.items():
            with gr.Tab(title):
                codes.append(gr.Code(language=language, interactive=False, label=title, buttons=["copy"]))
    versions = gr.Dataframe(headers=["Version", "Published", "Inputs", "Outputs"], interactive=False,
                            label="Versions", type="array")

    def app_choices() -> Any:
        with services.sessions() as session:
            apps = crud_apps.list_apps(session)
            choices = [(f"{a.name} ({a.slug})", a.slug) for a in apps]
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    def show(slug: str | None, request: gr.Request) -> tuple[Any, ...]:
        if not slug:
            return ("*Nothing published yet: use the Publish tab.*", *([""] * len(codes)), [])
        with services.sessions() as session:
            app = crud_apps.get_app(session, slug=slug)
            if app is None:
                return (f"*'{slug}' is no longer published.*", *([""] * len(codes)), [])
            all_versions = crud_apps.list_versions(session, app_id=app.id)
            name, description, public = app.name, app.description, app.public
        latest = AppSpec.from_dict(all_versions[-1].spec)
        base = _base_url(request)
        share = f"{services.share.url.rstrip('/')}/apps/{slug}/" if services.share.url else None
        lines = [f"### {name}", description or "", "",
                 f"- **Form**: [{base}/apps/{slug}/]({base}/apps/{slug}/)"
                 + ("" if public else " — private: visitors log in with an API key or the studio login"),
                 f"- **API**: `POST {base}/api/apps/{slug}/run` (sync) · `POST {base}/api/apps/{slug}/runs` (async) "
                 f"· [OpenAPI]({base}/api/apps/{slug}/openapi.json)",
                 f"- **Share link**: {share}" if share else
                 f"- **Share link**: `{base}/apps/{slug}/` (on your network; start with `--share` for a public link)"]
        if not public:
            lines.append("- Snippets read the key from `COMFY_PUBLISHER_KEY` "
                         "(create one: `python launch.py keys create NAME`).")
        code = snippets(base, slug, latest, public=public)
        rows = [[v.number, v.created_at.strftime("%Y-%m-%d %H:%M"),
                 ", ".join(i["name"] for i in v.spec["inputs"]) or "—",
                 ", ".join(f"{o['label']} ({o['kind']})" for o in v.spec["outputs"])] for v in reversed(all_versions)]
        return ("\n".join(lines), *[code[title] for title in _LANGUAGES], rows)

    async def show_async(slug: str | None, request: gr.Request) -> tuple[Any, ...]:
        return await asyncio.to_thread(show, slug, request)

    refresh.click(app_choices, outputs=[chooser])
    chooser.change(show_async, inputs=[chooser], outputs=[details, *codes, versions])
    return app_choices, [chooser]
