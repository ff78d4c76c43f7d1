"""The Deploy tab's "Plan: cost vs latency": the app's measured exec time (app/planner/history.py), a traffic
pattern and a goal (a target p95, a budget), a sweep of Modal settings through the autoscaler simulation
(runtimes/planner/sweep.py, off the event loop), the recommendation, a plot of cost against p95 with the pick
highlighted, and "Use these settings" to fill the Deploy form."""

from __future__ import annotations

import asyncio
import html
from collections.abc import Mapping
from typing import Any

import gradio as gr

from app.planner.form import PlanForm, PlanFormError, parse
from app.planner.history import measured_exec
from app.services import Services
from app.studio.plan_plot import cost_latency_figure
from runtimes.planner.prices import PriceTable, PriceTableError, in_force
from runtimes.planner.sweep import Point, recommend, sweep

DURATION_S = 300.0  # simulated traffic per setting: long enough for p95, short enough for a UI
DEFAULT_COLD_START_S = 15.0  # Modal's ComfyUI example; measure yours in a deployment's log


def history_md(services: Services, slug: str | None) -> tuple[str, Any]:
    """What the app's runs say about its exec time, and the exec field's new value (skip when none)."""
    if not slug:
        return "Choose an app above.", gr.skip()
    with services.sessions() as session:
        measured = measured_exec(session, slug=slug)
    if measured is None:
        return ("**No run history** for this app yet: type the seconds one run takes on the engine (or run the "
                "app a few times and reopen this)."), None
    return (f"Exec time {measured.describe()}. This server's device may not be the GPU you deploy to, and the "
            "engine answers a repeated prompt from its cache: change it if you know better."), \
        float(f"{measured.p50_s:.3g}")


def pick_md(reason: str, pick: Point | None, table: PriceTable) -> str:
    if pick is None:
        return f"### ✗ No setting fits\n{html.escape(reason)}"
    return (f"### ✓ {html.escape(pick.label())}\n"
            f"p50 **{pick.p50_s:.1f} s** · p95 **{pick.p95_s:.1f} s** · **${pick.cost_per_min:.4f}/min** "
            f"(${pick.cost_per_min * 60:.2f}/h under this traffic) · up to {pick.peak_containers} container(s)\n\n"
            f"<small>{html.escape(reason)}. Simulated {DURATION_S / 60:g} min of steady traffic; GPU prices "
            f"{'built-in' if table.builtin else 'yours'}, checked {html.escape(table.checked)} "
            f"({html.escape(table.source)}).</small>")


def build(services: Services, chooser: gr.Dropdown, fields: Mapping[str, gr.components.Component]) -> None:
    """The accordion, under the Deploy form whose `fields` (by setting name) it reads and fills."""
    with gr.Accordion("Plan: cost vs latency", open=False, elem_id="deploy-plan"):
        history = gr.Markdown("Choose an app above.", elem_id="plan-history")
        with gr.Row():
            exec_s = gr.Number(label="Exec time per run (s)", info="on the GPU chosen above; measured from the "
                               "app's runs when it has some", elem_id="plan-exec")
            other = gr.Textbox(label="Compare other GPUs (GPU=seconds)", placeholder="H100=1.2, L4=5",
                               info="each with its own exec time: none is guessed", elem_id="plan-other-gpus")
            overhead = gr.Number(0.5, label="Overhead per run (s)", info="uploads, outputs: not serialized",
                                 elem_id="plan-overhead")
            cold = gr.Number(DEFAULT_COLD_START_S, label="Cold start (s)", info="a container's start to its "
                             "first run", elem_id="plan-cold")
        with gr.Row():
            users = gr.Number(10, label="Users at once", precision=0, elem_id="plan-users")
            think = gr.Textbox("1-5", label="Think time (s, MIN-MAX)", elem_id="plan-think")
            inputs_up_to = gr.Number(8, label="Inputs per container, up to", precision=0, elem_id="plan-inputs")
            warm_up_to = gr.Number(2, label="Warm pool, up to", precision=0, elem_id="plan-warm")
            idle = gr.Textbox("60, 300", label="Idle windows (s)", elem_id="plan-idle")
        with gr.Row():
            target = gr.Number(label="Target p95 (s)", info="the cheapest setting that meets it (0: none)",
                               elem_id="plan-target")
            budget = gr.Number(label="Budget ($/min)", info="the fastest setting within it (0: none)",
                               elem_id="plan-budget")
            run = gr.Button("Plan", variant="primary", elem_id="plan-run")
        pick_text = gr.Markdown(elem_id="plan-pick")
        use = gr.Button("Use these settings", visible=False, elem_id="plan-use")
        plot = gr.Plot(show_label=False, format="png", elem_id="plan-plot", visible=False)
        chosen = gr.State(None)

    async def plan(gpu: str | None, gpu_count: float | None, max_containers: float | None, exec_value: float | None,
                   overhead_value: float | None, cold_value: float | None, users_value: float | None,
                   think_value: str, inputs_value: float | None, warm_value: float | None, idle_value: str,
                   other_value: str, target_value: float | None, budget_value: float | None) -> tuple[Any, ...]:
        target_value, budget_value = target_value or None, budget_value or None  # 0: no such goal
        form = PlanForm(gpu=gpu, exec_s=exec_value, other_gpus=other_value or "", overhead_s=overhead_value,
                        cold_start_s=cold_value, users=users_value, think=think_value or "",
                        max_inputs_up_to=inputs_value, warm_pool_up_to=warm_value, idle_windows=idle_value or "",
                        max_containers=max_containers, target_p95_s=target_value, budget_per_min=budget_value)
        # A container's price: the GPU's times the GPUs per container of the form (the deploy's own check bounds it).
        try:
            table = await asyncio.to_thread(in_force, services.settings.data_dir)
        except PriceTableError as exc:
            return f"### ✗ Cannot plan\n{html.escape(str(exc))}", gr.Button(visible=False), gr.Plot(visible=False), \
                None
        prices = {name: price * max(1, int(gpu_count or 1)) for name, price in table.usd_per_hour.items()}
        try:
            workload, grid = parse(form, prices)
            points = await asyncio.to_thread(sweep, workload, prices, grid, DURATION_S)
        except PlanFormError as exc:
            problems = "\n".join(f"- {html.escape(p)}" for p in exc.problems)
            return f"### ✗ Cannot plan\n{problems}", gr.Button(visible=False), gr.Plot(visible=False), None
        except ValueError as exc:  # the sweep's own bounds
            return f"### ✗ Cannot plan\n{html.escape(str(exc))}", gr.Button(visible=False), \
                gr.Plot(visible=False), None
        result = recommend(points, target_p95_s=form.target_p95_s, budget_per_min=form.budget_per_min)
        pick = result.pick
        settings = None if pick is None else {"gpu": pick.gpu, "max_inputs": pick.max_inputs,
                                              "min_containers": pick.min_containers,
                                              "scaledown_window": int(pick.idle_s)}
        figure = await asyncio.to_thread(cost_latency_figure, points, pick, form.target_p95_s, form.budget_per_min)
        return pick_md(result.reason, pick, table), gr.Button(visible=pick is not None), \
            gr.Plot(value=figure, visible=True), settings

    def apply(settings: dict[str, Any] | None) -> tuple[Any, ...]:
        if not settings:
            return tuple(gr.skip() for _ in range(4))
        return settings["gpu"], settings["max_inputs"], settings["min_containers"], settings["scaledown_window"]

    async def measure(slug: str | None) -> tuple[str, Any]:
        return await asyncio.to_thread(history_md, services, slug)

    plan_values = [exec_s, overhead, cold, users, think, inputs_up_to, warm_up_to, idle, other, target, budget]
    run.click(plan, inputs=[fields["gpu"], fields["gpu_count"], fields["max_containers"], *plan_values],
              outputs=[pick_text, use, plot, chosen], concurrency_limit=2)
    use.click(apply, inputs=[chosen], outputs=[fields["gpu"], fields["max_inputs"], fields["min_containers"],
                                               fields["scaledown_window"]])
    chooser.change(measure, inputs=[chooser], outputs=[history, exec_s], show_progress="hidden")
