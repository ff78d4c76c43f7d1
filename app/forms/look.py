"""The look shared by the studio and every form: one theme (local fonts only: pages work offline)."""

from __future__ import annotations

from typing import Any

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


# Gradio's queue polls for work every 1 ms (progress every 10 ms) while idle, per mounted Blocks: each form
# would cost the server ~2.5% of a core doing nothing, and every API request would queue behind those
# wake-ups. Its own Windows values (50 ms, 100 ms) delay a form's click by at most 50 ms.
_QUEUE_IDLE_POLL_S = 0.05
_PROGRESS_IDLE_POLL_S = 0.1


def mount(app: Any, blocks: gr.Blocks, path: str, **options: Any) -> None:
    """gr.mount_gradio_app with the shared options and a queue that idles quietly."""
    gr.mount_gradio_app(app, blocks, path=path, **{**mount_options(), **options})
    queue = blocks._queue  # pinned gradio (<7): the attribute is internal but stable across 5.x and 6.x
    queue.sleep_when_free = _QUEUE_IDLE_POLL_S
    queue.progress_update_sleep_when_free = _PROGRESS_IDLE_POLL_S
