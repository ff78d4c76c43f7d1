"""The studio page: an engine banner over the tabs (Publish, Apps, Runs, Engine; a Deploy tab fits after)."""

from __future__ import annotations

import gradio as gr

from app.services import Services
from app.studio import apps_tab, engine_tab, publish_tab, runs_tab

STUDIO_CSS = """
.engine-banner {padding: .6rem 1rem; border-radius: 8px; background: #eef2ff; color: #3730a3}
.engine-banner.failed {background: #fdecec; color: #9b1c1c}
"""


def build_studio(services: Services) -> gr.Blocks:
    with gr.Blocks(title="Comfy Publisher", analytics_enabled=False) as studio:
        with gr.Row(equal_height=True):
            gr.Markdown("# Comfy Publisher\nTurn a ComfyUI workflow into a form and an API.", elem_id="app-title")
            gr.Markdown("<div style='text-align:right'><a href='/docs'>API docs</a> · "
                        "<a href='/logout'>Log out</a></div>")
        banner = gr.HTML(engine_tab.banner_html(services), elem_id="engine-banner")
        timer = gr.Timer(1.0, active=services.engines.state == "starting")
        with gr.Tabs(elem_id="studio-tabs"):
            with gr.Tab("Publish", id="publish", elem_id="tab-publish"):
                publish_tab.build(services)
            # Each tab below fills itself when opened (and on its Refresh button): no stale lists.
            for title, module in (("Apps", apps_tab), ("Runs", runs_tab), ("Engine", engine_tab)):
                with gr.Tab(title, id=title.lower(), elem_id=f"tab-{title.lower()}") as tab:
                    load, outputs = module.build(services)
                tab.select(load, outputs=outputs, show_progress="hidden")

        def tick() -> tuple[str, gr.Timer]:
            return engine_tab.banner_html(services), gr.Timer(active=services.engines.state == "starting")

        timer.tick(tick, outputs=[banner, timer], show_progress="hidden")
        studio.load(tick, outputs=[banner, timer], show_progress="hidden")
    return studio
