"""Engine: which engine runs the apps, on which devices, the workers, the queue and the engine's log tail."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import gradio as gr

from app.services import Services
from app.studio import node_packs_section

LOG_LINES = 40


def engine_markdown(services: Services) -> str:
    info = services.engines.describe()
    state = {"starting": "starting", "ready": "✓ ready", "failed": "✗ failed", "stopped": "stopped"}
    lines = [f"**Engine**: {state.get(info['state'], info['state'])} · {services.runs.queued_count()} queued · "
             f"{services.runs.running_count()} running"]
    if info["error"]:
        lines.append(f"\n✗ {info['error']}")
    for engine, raw in zip(info["engines"], services.engines.engines(), strict=False):
        device = raw.device
        memory = f", {device.memory_mb / 1024:.1f} GiB" if device.memory_mb else ""
        where = "your own ComfyUI" if not engine["managed"] else "bundled ComfyUI, managed by this app"
        health = f"failed: {engine['failed']}" if engine["failed"] else ("ready" if raw.is_ready() else "not ready")
        editor = f" · [ComfyUI editor]({engine['url']})" if engine["url"] else ""
        lines.append(f"- **{engine['name']}** ({where}) on **{device.name}** ({device.label}{memory}) · {health}"
                     f" · restarts {engine['restarts']}{editor}")
    return "\n".join(lines)


def progress_text(services: Services) -> str:
    return "\n".join(services.engines.describe()["progress"]) or "(nothing yet)"


def log_text(services: Services) -> str:
    parts = []
    for engine in services.engines.engines():
        try:
            tail = engine.log_tail(LOG_LINES)
        except OSError as exc:
            tail = f"(log unreadable: {exc})"
        parts.append(f"== {engine.name} ==\n{tail}")
    return "\n\n".join(parts) or "(no engine yet)"


def banner_html(services: Services) -> str:
    """The line over every tab while the engine starts or when it failed; empty once it is ready."""
    state, error = services.engines.state, services.engines.error
    if state == "starting":
        last = (services.engines.describe()["progress"] or ["starting…"])[-1]
        return f"<div class='engine-banner'>The engine is starting: {html.escape(last)}</div>"
    if state == "failed":
        return f"<div class='engine-banner failed'>✗ The engine failed to start: {html.escape(error or '')}</div>"
    return ""


def build(services: Services) -> tuple[Callable[..., Any], list[gr.components.Component]]:
    """Lay out the tab; returns its loader (and what it fills), called when the tab opens."""
    summary = gr.Markdown(elem_id="engine-summary")
    refresh = gr.Button("Refresh", size="sm", elem_id="engine-refresh")
    with gr.Accordion("Start-up", open=False):
        progress = gr.Code(language=None, interactive=False, lines=8, max_lines=12)
    logs = gr.Code(label="Engine log (tail)", language=None, interactive=False, lines=14, max_lines=20)
    load_packs, pack_outputs = node_packs_section.build(services)

    def load() -> tuple[Any, ...]:
        return engine_markdown(services), progress_text(services), log_text(services), *load_packs()

    refresh.click(load, outputs=[summary, progress, logs, *pack_outputs])
    return load, [summary, progress, logs, *pack_outputs]
