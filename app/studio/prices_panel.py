"""The Deploy tab's "GPU prices": the price table in force (runtimes/planner/prices.py) with its date and source,
editable; "Save prices" writes the data dir's gpu_prices.json (dated today), "Back to built-in prices" removes it.
The cost card, the GPU choices and the plan read the same table."""

from __future__ import annotations

import contextlib
import html
from collections.abc import Callable
from typing import Any

import gradio as gr

from app.services import Services
from runtimes.planner import prices
from runtimes.planner.prices import PriceTable, PriceTableError

STUDIO_SOURCE = "edited in the studio"
COLUMNS = ["GPU", "USD per hour"]


def table_in_force(services: Services) -> tuple[PriceTable, str | None]:
    """The data dir's table, else the built-in one; with the error when the data dir's file cannot be used."""
    return prices.in_force_or_builtin(services.settings.data_dir)


def info_md(table: PriceTable, error: str | None = None) -> str:
    if error:
        return (f"**✗ The price file cannot be used**: {html.escape(error)}\n\nThe built-in prices are in force "
                "until it is fixed: save the table below to replace the file, or go back to the built-in prices.")
    if table.builtin:
        return (f"**Built-in prices**, checked {html.escape(table.checked)} ({html.escape(table.source)}). "
                "Edit a price and save to use your own.")
    return (f"**Your prices**, checked {html.escape(table.checked)}, {html.escape(table.source)}"
            f" (`{html.escape(str(table.path))}`); GPUs you did not price keep the built-in price.")


def rows(table: PriceTable) -> list[list[Any]]:
    return [[gpu, price] for gpu, price in table.usd_per_hour.items()]


def gpu_choices(table: PriceTable) -> list[tuple[str, str]]:
    """The Deploy form's GPU choices, labelled with their price in force."""
    return [(f"{gpu} · ${price:.2f}/h", gpu) for gpu, price in table.usd_per_hour.items()]


def edited_prices(values: list[list[Any]]) -> dict[str, Any]:
    """The table's rows as GPU: price; empty rows are skipped, numbers typed as text read as numbers (anything
    else is left for the table's own check to name)."""
    out: dict[str, Any] = {}
    for row in values or []:
        gpu, value = [*list(row), None, None][:2]
        if (gpu is None or str(gpu).strip() == "") and value in (None, ""):
            continue
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)
        out[str(gpu or "").strip()] = value
    return out


def build(services: Services, gpu_field: gr.Dropdown) -> tuple[Callable[[], tuple[Any, ...]], list[Any], list[Any]]:
    """The accordion; returns its loader and what it fills (for the tab's opening), and the save and reset events
    (the tab chains its cost card's estimate on them)."""
    table, error = table_in_force(services)
    with gr.Accordion("GPU prices (USD per hour)", open=False, elem_id="deploy-prices"):
        info = gr.Markdown(info_md(table, error), elem_id="prices-info")
        grid = gr.Dataframe(rows(table), headers=COLUMNS, datatype=["str", "number"], type="array",
                            interactive=True, static_columns=[0], elem_id="prices-table", max_height=420)
        with gr.Row():
            save = gr.Button("Save prices", variant="primary", size="sm", elem_id="prices-save")
            reset = gr.Button("Back to built-in prices", size="sm", elem_id="prices-reset")
        status = gr.Markdown(elem_id="prices-status")

    def load() -> tuple[Any, ...]:
        current, problem = table_in_force(services)
        return info_md(current, problem), rows(current), gr.update(choices=gpu_choices(current))

    def on_save(values: list[list[Any]]) -> tuple[Any, ...]:
        try:
            saved = prices.save(services.settings.data_dir, edited_prices(values), source=STUDIO_SOURCE)
        except PriceTableError as exc:
            return gr.skip(), gr.skip(), f"✗ Not saved: {html.escape(str(exc))}", gr.skip()
        return info_md(saved), rows(saved), f"✓ Saved to `{saved.path}`, dated {saved.checked}.", \
            gr.update(choices=gpu_choices(saved))

    def on_reset() -> tuple[Any, ...]:
        builtin = prices.reset(services.settings.data_dir)
        return info_md(builtin), rows(builtin), "✓ Back to the built-in prices (your file was removed).", \
            gr.update(choices=gpu_choices(builtin))

    outputs = [info, grid, status, gpu_field]
    events = [save.click(on_save, inputs=[grid], outputs=outputs),
              reset.click(on_reset, outputs=outputs)]
    return load, [info, grid, gpu_field], events
