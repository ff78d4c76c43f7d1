"""Load tests: simulated users run an app against this server (or its live Modal deployment) with Locust, live
progress while it runs, then the report (summary, numbers, plots); every report kept, two side by side, the
locustfile and report.json to download. Running is app/loadtest/studio_runs.py's, keeping reports
app/loadtest/reports.py's: this tab only shows them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import gradio as gr

from app.errors import AppError
from app.loadtest.errors import LoadTestError
from app.loadtest.options import LoadTestOptions
from app.loadtest.reports import Report, ReportNotFound, ReportUnreadable
from app.loadtest.studio_runs import Running, StudioLoadTests
from app.services import Services
from app.studio import loadtest_view as view
from db import crud_apps

NONE = ""  # "Compare with": nothing
PLOT_ROWS = 6  # the runner draws 4 plots: with two reports, 4 rows of pairs


def _number(value: Any, label: str, *, whole: bool = False) -> float:
    if value is None or value == "":
        raise ValueError(f"{label}: enter a number.")
    return int(value) if whole else float(value)


def build(services: Services) -> tuple[Callable[..., Any], list[gr.components.Component]]:
    """Lay out the tab; returns its loader (and what it fills), called when the tab opens."""
    tests = StudioLoadTests(services)
    gr.Markdown("Simulated users submit runs of an app (prompts from a list, random seeds, the app's defaults), "
                "wait for each result as a client does, think, and submit again. The test stops by itself.")
    with gr.Row(equal_height=False):
        chooser = gr.Dropdown(label="App", choices=[], interactive=True, scale=4, elem_id="loadtest-app")
        target = gr.Radio(["local", "modal"], value="local", label="Target", scale=2, elem_id="loadtest-target",
                          info="local: this server · modal: the app's live deployment")
        refresh = gr.Button("Refresh", size="sm", scale=0, elem_id="loadtest-refresh")
    with gr.Row():
        users = gr.Number(label="Users", value=2, precision=0, elem_id="loadtest-users")
        spawn_rate = gr.Number(label="Spawn rate (users/s)", value=1, elem_id="loadtest-spawn-rate")
        duration = gr.Number(label="Duration (s)", value=30, precision=0, elem_id="loadtest-duration")
        think_min = gr.Number(label="Think min (s)", value=1, elem_id="loadtest-think-min")
        think_max = gr.Number(label="Think max (s)", value=5, elem_id="loadtest-think-max")
    with gr.Row():
        start_button = gr.Button("Start load test", variant="primary", elem_id="loadtest-start")
        stop_button = gr.Button("Stop", variant="stop", elem_id="loadtest-stop")
    status = gr.Markdown(elem_id="loadtest-status")
    progress_log = gr.Textbox(label="Progress", lines=5, max_lines=10, interactive=False, autoscroll=True,
                              elem_id="loadtest-log")
    gr.Markdown("### Reports")
    table = gr.Dataframe(headers=view.LIST_COLUMNS, type="array", interactive=False, wrap=True, max_height=240,
                         elem_id="loadtest-reports")
    with gr.Row():
        show_a = gr.Dropdown(label="Show report", choices=[], interactive=True, elem_id="loadtest-show")
        show_b = gr.Dropdown(label="Compare with", choices=[("nothing", NONE)], value=NONE, interactive=True,
                             elem_id="loadtest-compare")
    comparison = gr.Markdown(elem_id="loadtest-comparison")
    with gr.Row(equal_height=False):
        with gr.Column():
            title_a = gr.Markdown(elem_id="loadtest-title-a")
            numbers_a = gr.Markdown(elem_id="loadtest-numbers-a")
        with gr.Column(visible=False) as column_b:
            title_b = gr.Markdown(elem_id="loadtest-title-b")
            numbers_b = gr.Markdown(elem_id="loadtest-numbers-b")
    plots: list[gr.Image] = []  # rows of two: one report's plots in reading order, or two reports' side by side
    for row in range(PLOT_ROWS):
        with gr.Row(elem_classes="loadtest-plot-row"):
            plots += [gr.Image(visible=False, interactive=False, type="filepath", buttons=["download", "fullscreen"],
                               elem_id=f"loadtest-plot-{row}-{side}") for side in ("a", "b")]
    with gr.Row():
        locustfile = gr.DownloadButton("Export locustfile.py (run Locust yourself)", interactive=False,
                                       elem_id="loadtest-locustfile")
        report_json = gr.DownloadButton("Download report.json", interactive=False, elem_id="loadtest-report-json")
    with gr.Accordion("Summary (summary.md)", open=False):
        summary_a = gr.Markdown(elem_id="loadtest-summary-a")

    # --- the lists ------------------------------------------------------------------------------------------

    def app_choices() -> Any:
        with services.sessions() as session:
            choices = [(f"{a.name} ({a.slug})", a.slug) for a in crud_apps.list_apps(session)]
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    def reports(shown: str | None = None, compared: str = NONE) -> tuple[Any, Any, Any]:
        """The table and both choosers; `shown` (else the newest report) and `compared` chosen."""
        listed = tests.store.list()
        choices = [view.choice(entry) for entry in listed]
        ids = {entry.id for entry in listed}
        shown = shown if shown in ids else (listed[0].id if listed else None)
        compared = compared if compared in ids and compared != shown else NONE
        return (view.listing_rows(listed), gr.update(choices=choices, value=shown),
                gr.update(choices=[("nothing", NONE), *choices], value=compared))

    def running_status() -> str:
        running = tests.running
        if running is None:
            return ""
        return (f"▶ Load test {running.id} of **{running.options.slug}** is running "
                f"({running.elapsed_s:.0f} s of {running.options.duration_s:.0f} s); its report appears below "
                "when it ends.")

    def load() -> tuple[Any, ...]:
        return app_choices(), running_status(), *reports()

    # --- showing reports ------------------------------------------------------------------------------------

    def _load(report_id: str | None) -> tuple[Report | None, str]:
        if not report_id:
            return None, "*No report yet: start a load test above.*"
        try:
            return tests.store.load(report_id), ""
        except (ReportNotFound, ReportUnreadable) as exc:
            return None, f"✗ {exc}"

    def plot_cells(a: Report, b: Report | None) -> list[Any]:
        pairs = view.plot_pairs(a.id, a.plots, b.id, b.plots) if b else view.plot_pairs(a.id, a.plots)
        cells = [cell for pair in pairs[:PLOT_ROWS] for cell in pair]
        cells += [None] * (len(plots) - len(cells))
        return [gr.Image(value=str(c[0]), label=c[1], visible=True) if c else gr.Image(value=None, visible=False)
                for c in cells]

    def show(a_id: str | None, b_id: str | None) -> tuple[Any, ...]:
        a, problem = _load(a_id)
        if a is None:
            off = gr.update(value=None, interactive=False)
            return (problem, "", off, off, "", "", gr.Column(visible=False), "", "",
                    *[gr.Image(value=None, visible=False)] * len(plots))
        downloads = (gr.update(value=str(a.locustfile) if a.locustfile else None, interactive=bool(a.locustfile)),
                     gr.update(value=str(a.report_json), interactive=True))
        shown_a = (f"### {view.title(a.id, a.data)}", view.numbers_markdown(a.data), *downloads,
                   view.summary_markdown(a.summary))
        b, problem_b = _load(b_id) if b_id and b_id != a_id else (None, "")
        if b is None:
            return (*shown_a, problem_b, gr.Column(visible=False), "", "", *plot_cells(a, None))
        return (*shown_a, view.comparison_markdown(a.id, a.data, b.id, b.data), gr.Column(visible=True),
                f"### {view.title(b.id, b.data)}", view.numbers_markdown(b.data), *plot_cells(a, b))

    def pick(rows: list[list[Any]], event: gr.SelectData) -> Any:
        """A click on a row of the list shows that report."""
        return gr.update(value=str(rows[event.index[0]][0]))

    # --- running --------------------------------------------------------------------------------------------

    def outcome(running: Running) -> str:
        task = running.task
        assert task is not None and task.done()
        if task.cancelled():
            return f"■ Load test {running.id} stopped after {running.elapsed_s:.0f} s: no report was kept."
        error = task.exception()
        if isinstance(error, LoadTestError | AppError | ValueError):  # what to fix, in the runner's words
            return f"✗ Load test {running.id} did not run: {view.in_fields(str(error))}"
        if error is not None:  # logged by StudioLoadTests
            return f"✗ Load test {running.id} failed: {error}. The server's log has the details."
        report = task.result()
        return (f"✓ Load test {running.id}: {report['requests']} requests, {view.failures_total(report)} failures, "
                f"p50 {view.seconds(report['total_s'].get('p50'))} s, "
                f"p95 {view.seconds(report['total_s'].get('p95'))} s.")

    async def start(slug: str | None, where: str, n_users: Any, rate: Any, seconds: Any, think_lo: Any,
                    think_hi: Any, compared: str) -> AsyncIterator[tuple[Any, ...]]:
        skip = (gr.skip(),) * 3
        if not slug:
            yield "✗ Choose an app first (publish one in the Publish tab).", gr.skip(), *skip
            return
        try:
            options = LoadTestOptions(slug=slug, users=_number(n_users, "Users", whole=True),
                                      spawn_rate=_number(rate, "Spawn rate"),
                                      duration_s=_number(seconds, "Duration"),
                                      think_min_s=_number(think_lo, "Think min"),
                                      think_max_s=_number(think_hi, "Think max"), target=where)
            running = tests.start(options)
        except (ValueError, AppError) as exc:
            yield f"✗ {view.in_fields(str(exc))}", gr.skip(), *skip
            return
        head = f"▶ Load test {running.id} of **{slug}** ({where}): "
        lines: list[str] = []
        yield head + "starting Locust…", "", *skip
        assert running.task is not None
        while not running.task.done():
            await asyncio.wait({running.task}, timeout=1.0)
            fresh = running.progress[len(lines):]
            if fresh:
                lines += [view.progress_line(p) for p in fresh]
                yield head + lines[-1].strip(), "\n".join(lines), *skip
        new = running.id if not running.task.cancelled() and running.task.exception() is None else None
        yield outcome(running), gr.skip(), *await asyncio.to_thread(reports, new, compared)

    def stop() -> str:
        running = tests.stop()
        return f"Stopping load test {running.id}…" if running else "No load test is running."

    refresh.click(load, outputs=[chooser, status, table, show_a, show_b])
    start_button.click(start, inputs=[chooser, target, users, spawn_rate, duration, think_min, think_max, show_b],
                       outputs=[status, progress_log, table, show_a, show_b], concurrency_limit=None,
                       show_progress="hidden")
    stop_button.click(stop, outputs=[status], concurrency_limit=None, show_progress="hidden")
    gr.on([show_a.change, show_b.change], show, inputs=[show_a, show_b],
          outputs=[title_a, numbers_a, locustfile, report_json, summary_a, comparison, column_b, title_b, numbers_b,
                   *plots], show_progress="hidden")
    table.select(pick, inputs=[table], outputs=[show_a])
    return load, [chooser, status, table, show_a, show_b]
