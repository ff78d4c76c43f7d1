"""Deploy: an app version to Modal or RunPod. A target choice swaps the settings form (from each target's schema:
help and cost per setting), the live cost estimate and the generated files; one-click deploy with a streamed log,
the app's deployments, teardown and the runtime switch. Validation, generation and deploying are the
DeploymentService's: this tab only shows them."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import gradio as gr

from app.deploy.runpod_target import CREDENTIALS_HELP as RUNPOD_CREDENTIALS_HELP
from app.deploy.service import DeployOptions, DeployPlanError
from app.services import Services
from app.studio import plan_panel, prices_panel
from db import crud_apps, crud_deployments
from db.models import AppVersion
from runtimes.modal.host.deploy import DeployError, ModalCredentialsError, credentials_present
from runtimes.modal.host.settings import DeploySettings, DeploySettingsError, settings_schema
from runtimes.planner.prices import BUILTIN, PriceTable
from runtimes.runpod.host.settings import RUNPOD_GPU_PRICES_CHECKED, RunPodSettings, runpod_settings_schema

DEPLOY_COLUMNS = ["Id", "Version", "Status", "URL", "Serving", "Created", "Error"]
CREDENTIALS_HELP = ("Set Modal credentials where this server runs: `modal token new` (writes ~/.modal.toml), or "
                    "`MODAL_TOKEN_ID` and `MODAL_TOKEN_SECRET` in the server's environment; then restart the server.")
# How the settings are grouped on the form (names from settings_schema()).
GROUPS = (("Hardware", (("gpu", "gpu_count"),)),
          ("Scaling", (("min_containers", "max_containers", "buffer_containers"), ("scaledown_window", "max_inputs"))),
          ("Runs and cold starts", (("timeout_s", "region"), ("memory_snapshot", "gpu_snapshot"))))
# RunPod's settings form, by the names of runpod_settings_schema(); a setting not placed here goes last.
RUNPOD_GROUPS = (("Hardware", (("gpu_pools", "gpu_count"), ("container_disk_gb",))),
                 ("Scaling", (("active_workers", "max_workers", "idle_timeout_s"),)),
                 ("Runs, cold starts and models", (("execution_timeout_s", "flashboot"),
                                                   ("models", "network_volume_id"), ("data_centers",))))
TARGETS = (("Modal", "modal"), ("RunPod", "runpod"))


def _info(field: dict[str, Any]) -> str:
    return f"{field['help']} Cost: {field['cost']}"


def _component(field: dict[str, Any], prices: dict[str, float], prefix: str = "deploy") -> gr.components.Component:
    """One setting's input. No min/max here: the service's validation names what is allowed."""
    default = field["default"]
    common = {"label": field["label"], "info": _info(field), "elem_id": f"{prefix}-{field['name']}",
              "value": default, "interactive": True}
    if isinstance(default, list | tuple):  # a list setting (RunPod's GPU pools, data centers)
        if field.get("choices"):
            return gr.Dropdown(choices=list(field["choices"]), multiselect=True, **{**common, "value": list(default)})
        return gr.Textbox(placeholder="comma-separated; empty = any", **{**common, "value": ", ".join(default)})
    match field["type"]:
        case "choice" if prices and field["name"] == "gpu":
            choices = [(f"{gpu} · ${prices[gpu]:.2f}/h", gpu) for gpu in field["choices"]]
            return gr.Dropdown(choices=choices, **common)
        case "choice":
            return gr.Dropdown(choices=list(field["choices"]), **common)
        case "bool":
            return gr.Checkbox(**common)
        case "text":
            examples = ", ".join(field.get("examples", [])[:6])
            return gr.Textbox(placeholder=f"e.g. {examples}" if examples else "",
                              **{**common, "value": default or ""})
        case "int":
            return gr.Number(precision=0, **common)
        case _:
            return gr.Textbox(**{**common, "value": "" if default is None else str(default)})


def _problems_md(problems: list[str]) -> str:
    return "### ✗ These settings cannot be deployed\n" + "\n".join(f"- {html.escape(p)}" for p in problems)


def _money(value: float | None) -> str:
    return "no cap" if value is None else f"${value:,.2f}"


def cost_html(settings: DeploySettings, prices: PriceTable = BUILTIN) -> str:
    cost = settings.cost(prices.usd_per_hour)
    if settings.min_containers:
        headline = (f"<div class='cost-big'>{_money(cost['warm_pool_monthly_usd'])}<span>/month</span></div>"
                    f"<div class='cost-sub'>for {settings.min_containers} warm container(s) around the clock "
                    f"({_money(cost['warm_pool_hourly_usd'])}/h), before any run</div>")
    else:
        headline = ("<div class='cost-big'>$0<span> while idle</span></div><div class='cost-sub'>scales to zero: "
                    "you pay only while containers run</div>")
    rows = [("One container", f"{_money(cost['gpu_hourly_usd'])}/h ({settings.gpu_spec})"),
            ("Worst case (max containers)", _money(cost["max_hourly_usd"]) + ("/h" if cost["max_hourly_usd"] else "")),
            ("Idle tail per burst", f"${cost['idle_tail_usd_per_burst']:.4f}/container")]
    table = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in rows)
    prices_label = f"{'built-in' if prices.builtin else 'yours'}, checked {prices.checked} ({prices.source})"
    return (f"<div class='cost-card'><div class='cost-title'>Estimated cost</div>{headline}"
            f"<table>{table}</table><div class='cost-note'>{html.escape(cost['note'])} Prices: "
            f"{html.escape(prices_label)}.</div></div>")


def runpod_cost_html(settings: RunPodSettings) -> str:
    """RunPod's estimate, at RunPod's prices of the preferred GPU pool."""
    cost = settings.cost()
    if cost["gpu_hourly_usd"] is None:
        return (f"<div class='cost-card'><div class='cost-title'>Estimated cost (RunPod)</div><div class='cost-sub'>"
                f"no price known for {html.escape(cost['gpu_pool'])}</div></div>")
    if settings.active_workers:
        headline = (f"<div class='cost-big'>{_money(cost['warm_pool_monthly_usd'])}<span>/month</span></div>"
                    f"<div class='cost-sub'>for {settings.active_workers} active worker(s) around the clock "
                    f"({_money(cost['warm_pool_hourly_usd'])}/h), before any run</div>")
    else:
        headline = ("<div class='cost-big'>$0<span> while idle</span></div><div class='cost-sub'>flex workers scale "
                    "to zero: you pay only while they run</div>")
    rows = [("One worker", f"{_money(cost['gpu_hourly_usd'])}/h ({cost['gpu_pool']} x {settings.gpu_count})"),
            ("Worst case (max workers)", f"{_money(cost['max_hourly_usd'])}/h"),
            ("Idle tail per burst", f"${cost['idle_tail_usd_per_burst']:.4f}/worker")]
    table = "".join(f"<tr><td>{k}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return (f"<div class='cost-card'><div class='cost-title'>Estimated cost (RunPod)</div>{headline}"
            f"<table>{table}</table><div class='cost-note'>{html.escape(cost['note'])} Prices: RunPod's, "
            f"{html.escape(RUNPOD_GPU_PRICES_CHECKED)}.</div></div>")


def credentials_md(present: bool) -> str:
    if present:
        return "<div class='deploy-creds ok'>✓ Modal credentials found on this server.</div>"
    fix = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(CREDENTIALS_HELP))
    return ("<div class='deploy-creds missing'><b>No Modal credentials on this server</b>: Deploy will stop before "
            f"anything is created. {fix}</div>")


def runpod_credentials_md(present: bool) -> str:
    if present:
        return "<div class='deploy-creds ok'>✓ RUNPOD_API_KEY found on this server.</div>"
    return ("<div class='deploy-creds missing'><b>No RUNPOD_API_KEY on this server</b>: Deploy will stop before "
            f"anything is created. {html.escape(RUNPOD_CREDENTIALS_HELP)}</div>")


def _credentials(target: str, services: Services) -> str:
    present = bool(services.deployments.target(target).schema()["credentials"]) if target == "runpod" else \
        credentials_present()
    return runpod_credentials_md(present) if target == "runpod" else credentials_md(present)


def _layout(schema: dict[str, Any], groups: tuple[Any, ...], prices: dict[str, float],
            prefix: str) -> dict[str, gr.components.Component]:
    """A target's settings form, grouped; settings the groups do not name come last."""
    by_name = {f["name"]: f for f in schema["fields"]}
    placed = {name for _, rows in groups for names in rows for name in names}
    extra = tuple(name for name in by_name if name not in placed)
    inputs: dict[str, gr.components.Component] = {}
    for title, rows in (*groups, *((("More", (extra,)),) if extra else ())):
        with gr.Group():
            gr.Markdown(f"#### {title}", elem_classes="deploy-group-title")
            for names in rows:
                with gr.Row():
                    for name in names:
                        if name in by_name:
                            inputs[name] = _component(by_name[name], prices, prefix)
    return inputs


def build(services: Services) -> tuple[Callable[..., Any], list[gr.components.Component],
                                       list[gr.components.Component]]:
    """Lay out the tab; returns its loader, what it fills and what it reads (the target shown), called when the tab
    opens."""
    prices_now = prices_panel.table_in_force(services)[0]
    with gr.Row(equal_height=False):
        chooser = gr.Dropdown(label="App", choices=[], interactive=True, scale=4, elem_id="deploy-app")
        version = gr.Dropdown(label="Version", choices=[], interactive=True, scale=2, elem_id="deploy-version")
        target = gr.Radio(TARGETS, value="modal", label="Deploy to", scale=2, elem_id="deploy-target")
        refresh = gr.Button("Refresh", size="sm", scale=0, elem_id="deploy-refresh")
    credentials = gr.HTML(elem_id="deploy-credentials")
    with gr.Row(equal_height=False):
        with gr.Column(scale=7):
            with gr.Column(visible=True, elem_id="deploy-modal-settings") as modal_box:
                inputs = _layout(settings_schema(), GROUPS, dict(prices_now.usd_per_hour), "deploy")
            with gr.Column(visible=False, elem_id="deploy-runpod-settings") as runpod_box:
                image = gr.Textbox(label="Worker image", placeholder="docker.io/you/my-app:v1",
                                   info="Build it from the generated files (Dockerfile, README.md) and push it to a "
                                        "registry RunPod can pull from; RunPod runs this image.",
                                   elem_id="deploy-runpod-image")
                runpod_inputs = _layout(runpod_settings_schema(), RUNPOD_GROUPS, {}, "deploy-runpod")
        with gr.Column(scale=4, elem_classes="deploy-side"):
            cost = gr.HTML(cost_html(DeploySettings(), prices_now), elem_id="deploy-cost")
            with gr.Column(visible=True) as prices_box:
                load_prices, price_outputs, price_events = prices_panel.build(services, inputs["gpu"])
            problems = gr.Markdown(elem_id="deploy-problems")
            with gr.Row():
                show_button = gr.Button("Show files", elem_id="deploy-show-files")
                deploy_button = gr.Button("Deploy to Modal", variant="primary", elem_id="deploy-button")
            status = gr.Markdown(elem_id="deploy-status")
            log = gr.Textbox(label="Deploy log", lines=10, max_lines=18, interactive=False, elem_id="deploy-log",
                             autoscroll=True)
    with gr.Accordion("Generated files (what Deploy ships)", open=False, elem_id="deploy-files-box") as files_box:
        files_note = gr.Markdown(elem_id="deploy-files-note")
        modal_app = gr.Code(language="python", label="modal_app.py", interactive=False, elem_id="deploy-files",
                            max_lines=32)
        dockerfile = gr.Code(language="dockerfile", label="Dockerfile", interactive=False, visible=False,
                             elem_id="deploy-files-dockerfile", max_lines=32)
        handler = gr.Code(language="python", label="handler.py", interactive=False, visible=False,
                          elem_id="deploy-files-handler", max_lines=32)
    with gr.Column(visible=True) as plan_box:
        plan_panel.build(services, chooser, inputs)  # recommends Modal settings, and fills the form above with them
    gr.Markdown("### Deployments of this app")
    deployments = gr.Dataframe(headers=DEPLOY_COLUMNS, type="array", interactive=False, elem_id="deploy-list",
                               wrap=True, max_height=260)
    with gr.Row(equal_height=False):
        runtime = gr.Radio(["local", "modal", "runpod"], value="local", label="Runs of this app go to", scale=3,
                           info="local: this server's engines · modal / runpod: its live deployment there (same "
                                "API, same run history)", elem_id="deploy-runtime")
        teardown_button = gr.Button("Tear down on Modal", variant="stop", scale=1, size="md",
                                    elem_id="deploy-teardown")
    manage_status = gr.Markdown(elem_id="deploy-manage-status")
    settings_inputs = list(inputs.values())
    runpod_settings_inputs = list(runpod_inputs.values())
    all_inputs = [target, image, *settings_inputs, *runpod_settings_inputs]

    def raw_settings(values: list[Any]) -> dict[str, Any]:
        raw = dict(zip(inputs, values, strict=True))
        raw["max_containers"] = raw["max_containers"] if raw["max_containers"] not in (None, "") else None
        return raw

    def raw_runpod(values: list[Any]) -> dict[str, Any]:
        raw: dict[str, Any] = {}
        for name, value in zip(runpod_inputs, values, strict=True):
            if isinstance(value, str) and isinstance(runpod_inputs[name], gr.Textbox) and name in (
                    "gpu_pools", "data_centers"):
                value = [part.strip() for part in value.split(",") if part.strip()]
            raw[name] = None if value == "" else value
        return raw

    def split(values: tuple[Any, ...]) -> tuple[str, str, dict[str, Any]]:
        """(target, image, the target's raw settings) from all_inputs' values."""
        chosen, image_name, rest = values[0] or "modal", values[1], list(values[2:])
        modal_values, runpod_values = rest[:len(settings_inputs)], rest[len(settings_inputs):]
        raw = raw_runpod(runpod_values) if chosen == "runpod" else raw_settings(modal_values)
        return chosen, (image_name or "").strip(), raw

    def estimate(*values: Any) -> tuple[Any, str]:
        chosen, _, raw = split(values)
        try:
            if chosen == "runpod":
                return runpod_cost_html(RunPodSettings.from_dict(raw)), ""
            settings = DeploySettings.from_dict(raw)
        except DeploySettingsError as exc:
            return gr.skip(), _problems_md(exc.problems)
        return cost_html(settings, prices_panel.table_in_force(services)[0]), ""

    def on_target(chosen: str, *values: Any) -> tuple[Any, ...]:
        runpod = chosen == "runpod"
        label = "RunPod" if runpod else "Modal"
        return (gr.Column(visible=not runpod), gr.Column(visible=runpod), gr.Column(visible=not runpod),
                gr.Column(visible=not runpod), gr.Code(visible=not runpod), gr.Code(visible=runpod),
                gr.Code(visible=runpod), gr.Button(value=f"Deploy to {label}"),
                gr.Button(value=f"Tear down on {label}"), _credentials(chosen, services), "",
                *estimate(chosen, *values))

    # --- choosing an app -----------------------------------------------------------------------------------

    def app_choices(chosen: str | None = "modal") -> tuple[Any, str]:
        with services.sessions() as session:
            choices = [(f"{a.name} ({a.slug})", a.slug) for a in crud_apps.list_apps(session)]
        picked = gr.update(choices=choices, value=choices[0][1] if choices else None)
        return picked, _credentials(chosen or "modal", services)

    def versions_of(slug: str | None) -> Any:
        if not slug:
            return gr.update(choices=[], value=None)
        with services.sessions() as session:
            app = crud_apps.get_app(session, slug=slug)
            numbers = [v.number for v in crud_apps.list_versions(session, app_id=app.id)] if app else []
        return gr.update(choices=[(f"v{n}" + (" (latest)" if n == numbers[-1] else ""), n)
                                  for n in reversed(numbers)], value=numbers[-1] if numbers else None)

    def listing(slug: str | None) -> tuple[list[list[Any]], str]:
        if not slug:
            return [], "local"
        with services.sessions() as session:
            app = crud_apps.get_app(session, slug=slug)
            if app is None:
                return [], "local"
            rows, mode = [], "local"
            for d in crud_deployments.list_deployments(session, app_id=app.id):
                number = session.get(AppVersion, d.version_id).number if d.version_id else None
                rows.append([d.id, f"v{number}" if number else "—", f"{d.status} ({d.provider})", d.url or "",
                             "✓" if d.serving else "", d.created_at.strftime("%Y-%m-%d %H:%M"), d.error or ""])
                mode = d.provider if d.serving else mode
        return rows, mode

    def on_app(slug: str | None) -> tuple[Any, ...]:
        return (versions_of(slug), *listing(slug))

    # --- files and deploy ----------------------------------------------------------------------------------

    def show_files(slug: str | None, number: int | None, *values: Any) -> tuple[Any, ...]:
        if not slug:
            return "✗ Choose an app first (publish one in the Publish tab).", gr.skip(), gr.skip(), gr.skip(), \
                gr.skip(), gr.skip()
        chosen, _, raw = split(values)
        try:
            plan = services.deployments.plan(slug, number, raw, chosen)
        except DeploySettingsError as exc:
            return _problems_md(exc.problems), "", gr.skip(), gr.skip(), gr.skip(), gr.skip()
        except DeployPlanError as exc:
            return f"✗ {exc}", "", gr.skip(), gr.skip(), gr.skip(), gr.skip()
        names = ", ".join(f"`{name}`" for name in plan.bundle.files)
        warnings = "".join(f"\n- ⚠ {w}" for w in plan.bundle.warnings)
        label = services.deployments.target(chosen).label
        note = (f"Version {plan.version.number} as {label} `{plan.app_name}`. Files: {names}, plus the "
                f"worker's code.{warnings}")
        files = plan.bundle.files
        if chosen == "runpod":
            return "", note, gr.skip(), files.get("Dockerfile", ""), files.get("handler.py", ""), \
                gr.Accordion(open=True)
        return "", note, files["modal_app.py"], gr.skip(), gr.skip(), gr.Accordion(open=True)

    async def deploy(slug: str | None, number: int | None, *values: Any,
                     progress: gr.Progress = gr.Progress()) -> AsyncIterator[tuple[Any, ...]]:  # noqa: B008
        if not slug:
            yield "✗ Choose an app first (publish one in the Publish tab).", "", "", gr.skip(), gr.skip()
            return
        chosen, image_name, raw = split(values)
        label = services.deployments.target(chosen).label
        progress(0, desc="checking the settings")
        try:
            plan = await asyncio.to_thread(services.deployments.plan, slug, number, raw, chosen,
                                           DeployOptions(image=image_name or None))
        except DeploySettingsError as exc:
            yield _problems_md(exc.problems), "", "", gr.skip(), gr.skip()
            return
        except DeployPlanError as exc:
            yield f"✗ {exc}", "", "", gr.skip(), gr.skip()
            return
        progress(0.05, desc=f"checking {label} credentials and network")
        try:
            row = await services.deployments.start(plan)
        except DeploySettingsError as exc:  # the options: RunPod's image
            yield _problems_md(exc.problems), "", "", gr.skip(), gr.skip()
            return
        except ModalCredentialsError as exc:
            yield "", f"### ✗ Not deployed: no way into Modal\n{exc} Then restart the server and deploy again. " \
                      "Nothing was created.", "", gr.skip(), gr.skip()
            return
        except DeployError as exc:
            yield "", f"### ✗ Not deployed to {label}\n{exc}\n\nNothing was created.", "", gr.skip(), gr.skip()
            return
        queue = services.deployments.listen(row.id)  # right after start(): its task has not run yet
        lines: list[str] = []
        try:
            yield "", f"Deploying version {plan.version.number} to {label} as `{plan.app_name}`…", "", \
                gr.skip(), gr.skip()
            while (line := await queue.get()) is not None:
                lines.append(line)
                progress(min(0.95, 0.1 + 0.02 * len(lines)), desc=line[:80])
                yield gr.skip(), gr.skip(), "\n".join(lines), gr.skip(), gr.skip()
        finally:
            services.deployments.unlisten(row.id, queue)
        rows, mode = await asyncio.to_thread(listing, slug)
        final = next((r for r in rows if r[0] == row.id), None)
        if final is not None and final[2].startswith("live"):
            message = f"### ✓ Live at {final[3]}\nSwitch *Runs of this app go to* to **{chosen}** to send runs there."
        else:
            message = f"### ✗ The deploy failed\n{final[6] if final else 'see the log'}"
        yield "", message, "\n".join(lines), rows, mode

    # --- deployments: runtime and teardown -------------------------------------------------------------------

    async def switch(slug: str | None, mode: str) -> tuple[Any, ...]:
        if not slug:
            return gr.skip(), gr.skip(), gr.skip()
        try:
            await asyncio.to_thread(services.deployments.set_runtime, slug, mode)
            message = f"✓ Runs of '{slug}' now go to " + (
                "this server's engines." if mode == "local" else
                f"its {services.deployments.target(mode).label} deployment.")
        except (DeployPlanError, ValueError) as exc:
            message = f"✗ {exc}"
        rows, current = await asyncio.to_thread(listing, slug)
        return message, rows, current

    async def teardown(slug: str | None, chosen: str | None) -> tuple[Any, ...]:
        if not slug:
            return gr.skip(), gr.skip(), gr.skip()
        label = services.deployments.target(chosen or "modal").label
        try:
            stopped = await services.deployments.teardown(slug, chosen or "modal")
            message = f"✓ Stopped on {label} ({stopped} deployment(s)); runs go to this server's engines."
        except (DeployPlanError, DeployError) as exc:
            message = f"✗ Not torn down: {exc}"
        rows, current = await asyncio.to_thread(listing, slug)
        return message, rows, current

    gr.on([c.change for c in settings_inputs + runpod_settings_inputs], estimate, inputs=all_inputs,
          outputs=[cost, problems], show_progress="hidden", queue=False)
    target.change(on_target, inputs=all_inputs,
                  outputs=[modal_box, runpod_box, prices_box, plan_box, modal_app, dockerfile, handler,
                           deploy_button, teardown_button, credentials, files_note, cost, problems],
                  show_progress="hidden")
    refresh.click(app_choices, inputs=[target], outputs=[chooser, credentials])
    chooser.change(on_app, inputs=[chooser], outputs=[version, deployments, runtime])
    show_button.click(show_files, inputs=[chooser, version, *all_inputs],
                      outputs=[problems, files_note, modal_app, dockerfile, handler, files_box])
    deploy_button.click(deploy, inputs=[chooser, version, *all_inputs],
                        outputs=[problems, status, log, deployments, runtime], concurrency_limit=None,
                        show_progress_on=[log])
    runtime.input(switch, inputs=[chooser, runtime], outputs=[manage_status, deployments, runtime])
    teardown_button.click(teardown, inputs=[chooser, target], outputs=[manage_status, deployments, runtime],
                          concurrency_limit=None)
    # The cost card follows the prices in force: saved, reset, or read again when the tab opens.
    refresh_cost: dict[str, Any] = {"fn": estimate, "inputs": all_inputs, "outputs": [cost, problems],
                                    "show_progress": "hidden"}
    for event in price_events:
        event.then(**refresh_cost)
    price_outputs[0].change(**refresh_cost)  # the table's info: it changes when the tab reads another table

    def open_tab(chosen: str | None = "modal") -> tuple[Any, ...]:
        return (*app_choices(chosen), *load_prices())

    return open_tab, [chooser, credentials, *price_outputs], [target]  # the credentials line of the target shown
