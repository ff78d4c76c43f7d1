"""Metrics: the numbers of GET /metrics, live, with small charts of the last few minutes. Sampled in-process
(app/metrics_history.py) every 2 s while the tab is open; this tab only shows the samples."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import gradio as gr
import pandas as pd

from app.metrics_history import HISTORY_S, RECENT_S, MetricsHistory, Sample, quantile, series
from app.services import Services

REFRESH_S = 2.0
STATUSES = ("succeeded", "failed", "cancelled", "timed_out")
RUN_COLUMNS = ["App", "Submitted", *(s.replace("_", " ") for s in STATUSES)]
CHARTS = (("workers", "Queue and workers", "count"), ("throughput", "Runs ended per minute", "runs/min"),
          ("latency", f"Execution and queue wait (runs ended in the last {RECENT_S:g} s)", "seconds"),
          ("gpu", "GPU utilisation and memory", "%"))
CARD = ("display:inline-block;min-width:9.5rem;margin:0 .5rem .5rem 0;padding:.6rem .9rem;border-radius:10px;"
        "background:#f8fafc;border:1px solid #e2e8f0;vertical-align:top")


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _card(title: str, value: str, sub: str = "") -> str:
    return (f"<div class='metrics-card' style='{CARD}'><div style='font-size:.75rem;text-transform:uppercase;"
            f"color:#64748b'>{html.escape(title)}</div><div style='font-size:1.5rem;font-weight:700;color:#1e293b'>"
            f"{html.escape(value)}</div><div style='font-size:.8rem;color:#475569'>{html.escape(sub)}</div></div>")


def now_html(sample: Sample) -> str:
    ended = {s: sum(v for (_, status), v in sample.runs.items() if status == s) for s in STATUSES}
    restarts = sum(sample.engine_restarts.values())
    delivered, failed = sample.deliveries.get("delivered", 0), sample.deliveries.get("failed", 0)
    if sample.gpus:
        gpu = " · ".join(f"{g.utilization_percent:.0f}%" for g in sample.gpus)
        memory = " · ".join(f"{g.memory_used_bytes / 2**30:.1f}/{g.memory_total_bytes / 2**30:.0f} GiB"
                            for g in sample.gpus)
        gpu_card = _card("GPU", gpu, memory)
    else:
        gpu_card = _card("GPU", "no GPU", "NVML found none on this server")
    cards = [
        _card("Runs ended", f"{sum(ended.values()):.0f}", f"{ended['succeeded']:.0f} succeeded · "
              f"{ended['failed'] + ended['timed_out']:.0f} failed · {ended['cancelled']:.0f} cancelled"),
        _card("Queue", f"{sample.queue_length:.0f}", "runs waiting for a worker"),
        _card("Workers", f"{sample.workers_busy:.0f} busy", f"{sample.workers_idle:.0f} idle"),
        _card("Execution", _seconds(quantile(0.5, sample.execution)),
              f"p50 · p95 {_seconds(quantile(0.95, sample.execution))}"),
        _card("Queue wait", _seconds(quantile(0.5, sample.queue_wait)),
              f"p50 · p95 {_seconds(quantile(0.95, sample.queue_wait))}"),
        _card("Engine restarts", f"{restarts:.0f}", ", ".join(f"{k}: {v:.0f}" for k, v in
                                                               sorted(sample.engine_restarts.items()))),
        _card("Webhooks", f"{delivered:.0f} delivered", f"{failed:.0f} failed"),
        gpu_card,
    ]
    return ("<div id='metrics-cards'>" + "".join(cards) + "</div><div style='font-size:.75rem;color:#94a3b8'>"
            "Counts since the server started; p50/p95 estimated from the /metrics histograms' buckets.</div>")


def runs_rows(sample: Sample) -> list[list[Any]]:
    apps = sorted({app for app, _ in sample.runs} | set(sample.submitted))
    return [[app, int(sample.submitted.get(app, 0)), *(int(sample.runs.get((app, s), 0)) for s in STATUSES)]
            for app in apps]


def chart_frames(history: MetricsHistory) -> dict[str, pd.DataFrame]:
    # Rows without a value stay (NaN, not drawn): the browser fixes a chart's series from its first data.
    frame = pd.DataFrame(series(history.samples()), columns=["s", "chart", "series", "value"]).astype({"value": float})
    return {chart: frame[frame["chart"] == chart][["s", "series", "value"]].reset_index(drop=True)
            for chart, _, _ in CHARTS}


def build(services: Services) -> tuple[Callable[..., Any], list[gr.components.Component]]:
    """Lay out the tab; returns its loader (and what it fills; the timer first), called when the tab opens."""
    history = MetricsHistory(services.metrics.registry)
    timer = gr.Timer(REFRESH_S, active=False)
    gr.Markdown(f"Live numbers of `GET /metrics`, refreshed every {REFRESH_S:g} s while this tab is open; the charts "
                f"keep the last {HISTORY_S / 60:g} minutes (x: seconds before now).")
    cards = gr.HTML(elem_id="metrics-now")
    runs = gr.Dataframe(headers=RUN_COLUMNS, type="array", interactive=False, elem_id="metrics-runs",
                        label="Runs by app and status", max_height=220)
    plots: list[gr.components.Component] = []
    for first in range(0, len(CHARTS), 2):
        with gr.Row():
            for name, title, unit in CHARTS[first:first + 2]:
                plots.append(gr.LinePlot(x="s", y="value", color="series", title=title, x_title="seconds",
                                         y_title=unit, height=230, elem_id=f"metrics-{name}",
                                         elem_classes="metrics-chart", show_label=False))
    no_gpu = gr.Markdown(elem_id="metrics-no-gpu")

    def refresh() -> tuple[Any, ...]:
        sample = history.sample()
        frames = chart_frames(history)
        gpu_note = "" if sample.gpus else "**GPU**: no GPU on this server (NVML found none): no GPU chart."
        return (now_html(sample), runs_rows(sample), *(frames[name] for name, _, _ in CHARTS[:3]),
                gr.LinePlot(value=frames["gpu"], visible=bool(sample.gpus)), gpu_note)

    def load() -> tuple[Any, ...]:
        return gr.Timer(active=True), *refresh()

    outputs = [cards, runs, *plots, no_gpu]
    timer.tick(refresh, outputs=outputs, show_progress="hidden", queue=False)
    return load, [timer, *outputs]


def tick_only_here(evt: gr.SelectData) -> gr.Timer:
    """On any tab change: the Metrics tab's timer runs while it is the one open."""
    return gr.Timer(active=evt.value == "Metrics")
