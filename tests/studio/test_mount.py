"""Mounted Gradio apps must idle quietly: the server mounts one per published app."""

from __future__ import annotations

import gradio as gr
from fastapi import FastAPI

from app.forms.look import mount


def test_a_mounted_blocks_queue_does_not_poll_every_millisecond() -> None:
    with gr.Blocks(analytics_enabled=False) as blocks:
        gr.Textbox()
    stock = blocks._queue.sleep_when_free, blocks._queue.progress_update_sleep_when_free
    assert stock[0] <= 0.001  # what Gradio does on Linux: a wake-up per ms per form, doing nothing
    mount(FastAPI(), blocks, "/apps/x")
    assert blocks._queue.sleep_when_free >= 0.05
    assert blocks._queue.progress_update_sleep_when_free >= 0.1
