"""Mount each published app's form at /apps/{slug}/, and swap it while the server runs when the app is
published again or unpublished (measured recipe: /work/shared/notes/gradio.md)."""

from __future__ import annotations

import asyncio
import logging

import gradio as gr
from fastapi import FastAPI
from starlette.routing import Mount

from app.auth.web import WebAuth
from app.forms.look import CSS, mount
from app.forms.page import build_form
from app.services import Services
from db import crud_apps
from publisher import AppSpec
from runtimes.media import largest_upload_bytes

log = logging.getLogger(__name__)


class AppVisibility:
    """Which apps are public, as their forms were last built: the login asks it for every form request."""

    def __init__(self) -> None:
        self.public: dict[str, bool] = {}

    def is_public(self, slug: str) -> bool:
        return self.public.get(slug, True)  # an unknown slug answers 404 anyway


class FormMounts:
    def __init__(self, app: FastAPI, services: Services, *, auth: WebAuth, visibility: AppVisibility) -> None:
        """`auth`: the server's login, to record a logged-in visitor's API key with their runs."""
        self.app, self.services, self.auth, self.visibility = app, services, auth, visibility

    def _blocks(self, slug: str) -> gr.Blocks | None:
        with self.services.sessions() as session:
            app = crud_apps.get_app(session, slug=slug)
            version = crud_apps.get_version(session, app_id=app.id) if app else None
            if app is None or version is None:
                self.visibility.public.pop(slug, None)
                return None
            self.visibility.public[slug] = app.public
            return build_form(self.services, slug=slug, name=app.name, description=app.description,
                              spec=AppSpec.from_dict(version.spec), version=version.number, auth=self.auth)

    def _mount(self, slug: str, blocks: gr.Blocks) -> None:
        settings = self.services.settings
        mount(self.app, blocks, f"/apps/{slug}", allowed_paths=[str(settings.outputs_dir)],
              max_file_size=largest_upload_bytes(settings.max_upload_bytes), css=CSS)

    def mount_all(self) -> None:
        """Before the server starts: the app's lifespan runs each form's start-up events."""
        with self.services.sessions() as session:
            slugs = [app.slug for app in crud_apps.list_apps(session)]
        for slug in slugs:
            try:
                blocks = self._blocks(slug)
                if blocks is not None:
                    self._mount(slug, blocks)
            except Exception:  # one broken app must not keep the others (or the server) down
                log.exception("could not build the form of app %s", slug)

    async def refresh(self, slug: str) -> None:
        """While running: replace (or remove) the app's form. The old Mount must go, or it keeps answering."""
        path = f"/apps/{slug}"
        self.app.router.routes[:] = [r for r in self.app.router.routes
                                     if not (isinstance(r, Mount) and r.path == path)]
        # Built in an executor thread, which (unlike asyncio.to_thread) does not copy context variables: called
        # from a studio event, Gradio's render context would otherwise capture the new Blocks' components.
        blocks = await asyncio.get_running_loop().run_in_executor(None, self._blocks, slug)
        if blocks is None:
            return
        lifespan = self.app.router.lifespan_context
        self._mount(slug, blocks)
        self.app.router.lifespan_context = lifespan  # the running lifespan is not re-entered; keep no chain
        blocks.run_startup_events()
        await blocks.run_extra_startup_events()
