"""The look shared by the studio and every form: one theme (local fonts only: pages work offline)."""

from __future__ import annotations

import gradio as gr

CSS = """
.gradio-container {max-width: 1180px !important; width: 100% !important; margin: 0 auto !important}
#app-title h1 {margin-bottom: 0}
#app-description {color: var(--body-text-color-subdued)}
.status-line {min-height: 1.6em}
footer {display: none !important}
"""


def theme() -> gr.themes.Base:
    return gr.themes.Default(primary_hue="indigo", secondary_hue="slate", neutral_hue="slate", radius_size="md")


def mount_options() -> dict[str, object]:
    """Keyword arguments of gr.mount_gradio_app shared by every mount (no SSR node process, no footer)."""
    return {"theme": theme(), "css": CSS, "ssr_mode": False, "footer_links": [], "run_history": False}
