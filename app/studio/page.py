"""The studio page: an engine banner over the tabs (Publish, Apps, Deploy, Runs, Load tests, Engine, Metrics)."""

from __future__ import annotations

import gradio as gr

from app.services import Services
from app.studio import apps_tab, deploy_tab, engine_tab, loadtest_tab, metrics_tab, publish_tab, runs_tab

STUDIO_CSS = """
.engine-banner {padding: .6rem 1rem; border-radius: 8px; background: #eef2ff; color: #3730a3}
.engine-banner.failed {background: #fdecec; color: #9b1c1c}
.cost-card {padding: 1rem 1.2rem; border-radius: 12px; background: #f8fafc; border: 1px solid #e2e8f0}
.cost-title {font-size: .8rem; text-transform: uppercase; letter-spacing: .05em; color: #64748b}
.cost-big {font-size: 2rem; font-weight: 700; color: #1e293b; margin: .2rem 0}
.cost-big span {font-size: 1rem; font-weight: 400; color: #64748b}
.cost-sub {color: #475569; font-size: .9rem; margin-bottom: .6rem}
.cost-card table {width: 100%; font-size: .9rem; border-collapse: collapse}
.cost-card table, .cost-card tr {border: 0 !important}
.cost-card td {padding: .25rem 0 !important; border: 0 !important; border-top: 1px solid #e2e8f0 !important}
.cost-card td:last-child {text-align: right; font-variant-numeric: tabular-nums}
.cost-note {font-size: .75rem; color: #94a3b8; margin-top: .5rem}
.deploy-creds {padding: .6rem 1rem; border-radius: 8px}
.deploy-creds.ok {background: #ecfdf5; color: #065f46}
.deploy-creds.missing {background: #fffbeb; color: #92400e}
.deploy-group-title {padding: .4rem .8rem 0}
"""


def build_studio(services: Services) -> gr.Blocks:
    with gr.Blocks(title="Comfy Publisher", analytics_enabled=False) as studio:
        with gr.Row(equal_height=True):
            gr.Markdown("# Comfy Publisher\nTurn a ComfyUI workflow into a form and an API.", elem_id="app-title")
            gr.Markdown("<div style='text-align:right'><a href='/studio/editor' target='_blank'>Open the ComfyUI "
                        "editor</a> · <a href='/docs'>API docs</a> · <a href='/logout'>Log out</a></div>",
                        elem_id="studio-links")
        banner = gr.HTML(engine_tab.banner_html(services), elem_id="engine-banner")
        timer = gr.Timer(1.0, active=services.engines.state == "starting")
        with gr.Tabs(elem_id="studio-tabs") as studio_tabs:
            with gr.Tab("Publish", id="publish", elem_id="tab-publish"):
                from_editor, publish_outputs = publish_tab.build(services)
            # Each tab below fills itself when opened (and on its Refresh button): no stale lists.
            tabs = (("Apps", apps_tab), ("Deploy", deploy_tab), ("Runs", runs_tab), ("Load tests", loadtest_tab),
                    ("Engine", engine_tab), ("Metrics", metrics_tab))
            for title, module in tabs:
                key = title.lower().replace(" ", "-")
                with gr.Tab(title, id=key, elem_id=f"tab-{key}") as tab:
                    load, outputs, *inputs = module.build(services)  # inputs: what the load reads, if anything
                tab.select(load, inputs=inputs[0] if inputs else None, outputs=outputs, show_progress="hidden")
                if module is metrics_tab:
                    metrics_timer = outputs[0]
        studio_tabs.select(metrics_tab.tick_only_here, outputs=[metrics_timer])  # ticks while Metrics is open

        def tick() -> tuple[str, gr.Timer]:
            return engine_tab.banner_html(services), gr.Timer(active=services.engines.state == "starting")

        timer.tick(tick, outputs=[banner, timer], show_progress="hidden")
        studio.load(tick, outputs=[banner, timer], show_progress="hidden")
        studio.load(from_editor, outputs=publish_outputs)  # /studio/?draft=ID: the editor's File > Publish…
    return studio
