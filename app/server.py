"""The web app: one FastAPI process serving the API (and, later, the studio) on one port."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse

from app.engine_status import EngineStatus


def create_app(engines: EngineStatus) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engines.start_in_background()
        yield
        engines.stop()

    app = FastAPI(title="Comfy Publisher", version="0.1.0", lifespan=lifespan)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """At least one engine answers; 503 while engines start or after they failed."""
        ready = engines.is_ready()
        return JSONResponse({"ready": ready, "engine": engines.state}, status_code=200 if ready else 503)

    @app.get("/api/engine", tags=["engine"])
    def engine_info() -> dict:
        """Which engine is in use, its devices, and start-up progress."""
        return engines.describe()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home() -> str:
        return _status_page(engines)

    return app


def _status_page(engines: EngineStatus) -> str:
    info = engines.describe()
    rows = "".join(
        f"<li><b>{html.escape(e['name'])}</b> on {html.escape(e['device_name'])}"
        + (f" — <a href='{html.escape(e['url'])}'>ComfyUI editor</a>" if e["url"] else "")
        + "</li>"
        for e in info["engines"]
    )
    refresh = "<meta http-equiv='refresh' content='2'>" if info["state"] == "starting" else ""
    log = html.escape("\n".join(info["progress"]))
    error = f"<p class='error'>{html.escape(info['error'])}</p>" if info["error"] else ""
    return f"""<!doctype html><html><head><meta charset='utf-8'><title>Comfy Publisher</title>{refresh}
<style>body{{font-family:system-ui,sans-serif;max-width:760px;margin:3rem auto;color:#222}}
pre{{background:#f4f4f6;padding:1rem;border-radius:8px;white-space:pre-wrap;font-size:.85rem}}
.error{{color:#b00020;white-space:pre-wrap}}</style></head><body>
<h1>Comfy Publisher</h1><p>Engine: <b>{info['state']}</b></p>{error}<ul>{rows}</ul>
<p><a href='/docs'>API docs</a></p><h3>Start-up</h3><pre>{log}</pre></body></html>"""
