"""The ComfyUI editor's way in. Its "Publish…" command (runtimes/engine/editor_extension) posts the open graph as
a form to POST /editor/publish, in a new tab: the graph is kept as a draft and the tab lands on the studio's Publish
tab with it. A form, not a fetch: the editor's page may forbid connections to other origins (ComfyUI sets
`connect-src 'self'` with --disable-api-nodes), never a navigation. GET /studio/editor opens the editor of the
engine the app uses."""

from __future__ import annotations

import asyncio
import html
import json
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from app.body_limit import BodyLimits
from app.deps import ServicesDep
from app.editor.drafts import DraftStore
from app.editor.origins import EditorOrigins
from app.errors import Unavailable
from app.services import Services
from publisher import detect_format

router = APIRouter(include_in_schema=False)


@router.post("/editor/publish", response_model=None)
async def publish_from_editor(request: Request, services: ServicesDep) -> HTMLResponse | RedirectResponse:
    """Form fields: workflow (the UI format, JSON), prompt (what the editor would queue, JSON), name."""
    origin = request.headers.get("origin")
    own = str(request.base_url)
    if origin is not None and not _origins(services).allows(origin, own):
        return _page("Not from this editor", EditorOrigins.refusal(origin), status=403)
    who = await asyncio.to_thread(request.app.state.web_auth.who, dict(request.cookies))
    if not who.studio:
        return _page("Log in first", "You are not logged in to Comfy Publisher's studio in this browser. Log in, "
                     "then choose File › Publish… in the ComfyUI editor again.", status=401,
                     link=("Log in", "/login?next=/studio/"))
    try:
        workflow, prompt, name = await _read(request, services.settings.max_upload_bytes)
    except ValueError as exc:
        return _page("This workflow cannot be sent", str(exc), status=422)
    draft = await asyncio.to_thread(DraftStore(services.settings.editor_drafts_dir).save, workflow, prompt, name)
    return RedirectResponse(f"/studio/?draft={quote(draft.id)}", status_code=303)


@router.get("/studio/editor")
def open_editor(services: ServicesDep) -> RedirectResponse:
    """To the editor of the first engine that answers (a redirect: the engine's port is chosen at its start)."""
    for engine in services.engines.describe()["engines"]:
        if engine["url"]:
            return RedirectResponse(engine["url"], status_code=307)
    raise Unavailable("The engine is still starting: its editor opens once it is ready (the studio's Engine tab "
                      "shows its progress).", retry_after=5)


def _origins(services: Services) -> EditorOrigins:
    engines = [engine["url"] for engine in services.engines.describe()["engines"] if engine["url"]]
    return EditorOrigins(engines, services.settings.editor_origins)


async def _read(request: Request, max_upload_bytes: int) -> tuple[dict[str, Any], dict[str, Any] | None, str]:
    """The form's three fields, checked; ValueError saying what is wrong."""
    cap = BodyLimits.of(max_upload_bytes).workflow.bytes
    try:
        form = await request.form(max_part_size=cap)  # a workflow is one large text field
    except HTTPException as exc:
        raise ValueError(f"The form cannot be read: {exc.detail}") from None
    fields = {key: value for key, value in form.items() if not isinstance(value, UploadFile)}
    workflow = _json_field(fields, "workflow")
    if not isinstance(workflow, dict) or detect_format(workflow) != "ui":
        raise ValueError("'workflow' must be the editor's graph in the UI format (with 'nodes' and 'links'), as "
                         "app.graphToPrompt() gives it.")
    prompt = _json_field(fields, "prompt") if fields.get("prompt") else None
    if prompt is not None and not isinstance(prompt, dict):
        raise ValueError("'prompt' must be the JSON object app.graphToPrompt() gives as its output.")
    return workflow, prompt, " ".join(str(fields.get("name", "")).split())[:200]


def _json_field(fields: dict[str, Any], name: str) -> Any:
    text = fields.get(name)
    if not text:
        raise ValueError(f"The form has no '{name}' field: send the editor's graph as JSON in it.")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"'{name}' is not JSON ({exc}).") from None


def _page(title: str, message: str, *, status: int, link: tuple[str, str] | None = None) -> HTMLResponse:
    action = f"<p><a href='{html.escape(link[1])}'>{html.escape(link[0])}</a></p>" if link else ""
    return HTMLResponse(f"""<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)} · Comfy
Publisher</title><style>body{{font-family:system-ui,sans-serif;max-width:640px;margin:4rem auto;color:#1e1f29}}
h1{{font-size:1.3rem}}a{{color:#4f46e5}}</style></head><body><h1>{html.escape(title)}</h1>
<p>{html.escape(message)}</p>{action}</body></html>""", status_code=status)
