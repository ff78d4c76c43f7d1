"""The official frontend (served by the bundled engine, in headless chromium) is the oracle for the UI-format
converter: its own ``app.graphToPrompt()`` and ``convert_ui_workflow`` must queue the same prompt."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from publisher import NodeCatalog, WorkflowFormatError, convert_ui_workflow
from publisher.app_mode import load_marked_workflow
from publisher.frontend_values import apply_run_replacements, primitive_value
from publisher.node_packs import MissingNodeTypesError
from publisher.quoting import cut
from tests.support.templates import ui_templates

pytest.importorskip("playwright")
from tests.support.browser import CHROMIUM, chromium

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs /usr/bin/chromium (make test installs it)")
FIXTURES = Path(__file__).resolve().parents[1] / "publisher" / "fixtures"

# The dialogs for missing nodes and models are left closed (they change nothing queued), and the tab each load
# opens is closed after it: 188 open tabs made each load slower than the one before (measured: 150 ms -> 250 ms).
_LOAD_AND_CONVERT = """async (workflow) => {
    await window.app.loadGraphData(workflow, true, true, null,
                                   {showMissingNodesDialog: false, showMissingModelsDialog: false});
    const { output } = await window.app.graphToPrompt();
    const tabs = window.app.extensionManager.workflow;
    for (const tab of [...tabs.openWorkflows]) if (tab !== tabs.activeWorkflow) await tabs.closeWorkflow(tab);
    return output;
}"""
# A batch of workflows loaded in turn inside the page, started without waiting for it (window.oracleBatch), so
# that two pages (two renderer processes) convert at once; `frontend_prompts` collects what they queued. A batch
# queues what one load per call queues (checked on all 188 templates); only fewer frames are drawn between loads.
_START_BATCH = f"""(workflows) => {{
    const loadAndConvert = {_LOAD_AND_CONVERT};
    window.oracleBatch = (async () => {{
        const outputs = [];
        for (const workflow of workflows) outputs.push(await loadAndConvert(workflow));
        return outputs;
    }})();
}}"""
# Display settings only (nothing they change is queued): the minimap redraws the whole graph after each load and
# the DOM widgets' clipping measures every widget against every node; with a smaller window than the default
# 1360x900 to paint, a load costs about half as much CPU (measured on 60 templates: 16 s -> 10 s).
_DISPLAY_SETTINGS = {"Comfy.Minimap.Visible": False, "Comfy.DOMClippingEnabled": False}
_VIEWPORT = {"width": 640, "height": 480}


# One engine and one browser for the module: the engine with its API nodes on (they ship with it; the session
# engine switches them off), so every template's node types are there but those of other packs.
@pytest.fixture(scope="module")
def catalog(api_nodes_object_info: dict[str, Any]) -> NodeCatalog:
    return NodeCatalog.from_object_info(api_nodes_object_info)


@pytest.fixture(scope="module")
def editor(api_nodes_engine_url: str) -> Iterator[Any]:
    httpx.post(f"{api_nodes_engine_url}/settings", json=_DISPLAY_SETTINGS, timeout=30, trust_env=False
               ).raise_for_status()
    with chromium() as context:
        yield open_editor(context, api_nodes_engine_url)


def open_editor(context: Any, engine_url: str) -> Any:
    page = context.new_page()
    page.set_viewport_size(_VIEWPORT)
    page.goto(engine_url)
    page.wait_for_function("window.app && window.app.graph && window.app.vueAppReady !== false", timeout=120_000)
    return page


def frontend_prompt(editor: Any, workflow: dict[str, Any]) -> dict[str, Any]:
    output: dict[str, Any] = editor.evaluate(_LOAD_AND_CONVERT, workflow)
    return output


def frontend_prompts(editors: list[Any], workflows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the editor queues for each workflow, the workflows dealt out in turn to the pages, which convert at once."""
    for index, page in enumerate(editors):
        page.evaluate(_START_BATCH, workflows[index::len(editors)])
    batches = [page.evaluate("window.oracleBatch") for page in editors]
    outputs: list[dict[str, Any]] = [{}] * len(workflows)
    for index, batch in enumerate(batches):
        outputs[index::len(editors)] = batch
    return outputs


def differences(ours: dict[str, Any], theirs: dict[str, Any], catalog: NodeCatalog) -> list[str]:
    """What differs, ignoring inputs the engine does not have (frontend-only widgets such as 'preview')."""
    found = [f"only the frontend queues node {nid}" for nid in sorted(set(theirs) - set(ours))]
    found += [f"only we queue node {nid}" for nid in sorted(set(ours) - set(theirs))]
    for nid in sorted(set(ours) & set(theirs)):
        mine, real = ours[nid], theirs[nid]
        if mine["class_type"] != real["class_type"]:
            found.append(f"node {nid}: class {mine['class_type']} != {real['class_type']}")
            continue
        schema = catalog.get(real["class_type"])
        known = {spec.name for spec in schema.inputs} if schema is not None else set(real["inputs"])
        real_inputs = {k: v for k, v in real["inputs"].items() if k in known}
        mine_inputs = {k: v for k, v in mine["inputs"].items() if k in known}
        for name in sorted(set(real_inputs) | set(mine_inputs)):
            if real_inputs.get(name, "<absent>") != mine_inputs.get(name, "<absent>"):
                found.append(f"node {nid} input {name}: ours {str(mine_inputs.get(name, '<absent>'))[:60]} "
                             f"!= frontend {str(real_inputs.get(name, '<absent>'))[:60]}")
    return found


def frontend_only_inputs(ours: dict[str, Any], theirs: dict[str, Any], catalog: NodeCatalog) -> list[str]:
    """`Class.input` for each input one side queues differently that the engine's schema does not have (the
    editor's own widgets, e.g. audioUI, preview, SaveGLB.image): the engine never reads them."""
    found = set()
    for nid in set(ours) & set(theirs):
        schema = catalog.get(theirs[nid]["class_type"])
        known = {spec.name for spec in schema.inputs} if schema is not None else set()
        for name in set(ours[nid]["inputs"]) | set(theirs[nid]["inputs"]):
            if name not in known and ours[nid]["inputs"].get(name) != theirs[nid]["inputs"].get(name):
                found.add(f"{theirs[nid]['class_type']}.{name}")
    return sorted(found)


_NOT_FITTING = re.compile(r"node (\S+) \([^)]*\): widget value .* does not fit input '([^']+)'")


def engine_refuses_too(error: str, theirs: dict[str, Any], engine_url: str) -> bool:
    """A refusal for a saved value that does not fit the node is right when the engine refuses, on that very
    node and input, the prompt the editor queues (its values line up the same way; the editor sends it anyway)."""
    found = _NOT_FITTING.search(error)
    if found is None:
        return False
    node_id, name = found.groups()
    response = httpx.post(f"{engine_url}/prompt", json={"prompt": theirs}, timeout=60, trust_env=False)
    errors = (response.json().get("node_errors") or {}).get(node_id, {}).get("errors", [])
    return response.status_code == 400 and any(e.get("extra_info", {}).get("input_name") == name for e in errors)


def test_every_template_converts_as_the_frontend_does(editor: Any, catalog: NodeCatalog,
                                                      api_nodes_engine_url: str) -> None:
    # The tally: all the engine's templates, loaded once each into the real editor of an engine with its
    # API nodes on, against what analyze converts (load_marked_workflow) with that engine's catalog.
    templates = ui_templates()
    assert len(templates) >= 188
    tally: dict[str, list[str]] = {"identical": [], "equivalent": [], "differs": [], "refused": []}
    lacking, refused_as_the_engine_does, subgraphed = [], [], 0
    started = time.monotonic()
    # A second page beside the module's: each page is its own renderer process, so two cores convert at once.
    second = open_editor(editor.context, api_nodes_engine_url)
    try:
        queued = frontend_prompts([editor, second], [workflow for _, workflow in templates])
    finally:
        second.close()
    for (path, workflow), theirs in zip(templates, queued, strict=True):
        try:
            ours = load_marked_workflow(workflow, catalog)[0].to_prompt()
        except MissingNodeTypesError as exc:
            lacking.append(path.name)
            tally["refused"].append(f"{path.name}: node types this engine lacks: "
                                    f"{', '.join(sorted(m.class_type for m in exc.missing))}")
            continue
        except WorkflowFormatError as exc:
            if engine_refuses_too(str(exc), theirs, api_nodes_engine_url):
                refused_as_the_engine_does.append(path.name)
            tally["refused"].append(f"{path.name}: {cut(str(exc), 400)}")
            continue
        subgraphed += any(":" in node_id for node_id in theirs) and not differences(ours, theirs, catalog)
        if found := differences(ours, theirs, catalog):
            tally["differs"].append(f"{path.name}: {found[0]}")
        elif only := frontend_only_inputs(ours, theirs, catalog):
            tally["equivalent"].append(f"{path.name}: {', '.join(only)}")
        else:
            tally["identical"].append(path.name)
    took = time.monotonic() - started
    print(f"\n{len(templates)} templates against the real frontend in {took:.0f} s: "
          + ", ".join(f"{len(names)} {bucket}" for bucket, names in tally.items()))
    for bucket in ("equivalent", "differs", "refused"):
        print(f"{bucket}:" + "".join(f"\n  {entry}" for entry in tally[bucket]))
    assert subgraphed >= 15  # the templates with subgraphs (0.7.25 has 15 that use them) are expanded alike
    assert tally["differs"] == []
    unexplained = [e for e in tally["refused"] if e.split(":")[0] not in lacking + refused_as_the_engine_does]
    assert unexplained == []


# Fixtures of our own (tests/publisher/fixtures), each with the prompt the frontend queued for it stored beside it
# (`<name>.frontend.json`, written by this test when FRONTEND_ORACLE_WRITE=1) for the tests that run without a browser.
UI_FIXTURES = ["ui_subgraphs_nested.json", "ui_subgraphs_nested_defined_late.json", "ui_group_node.json",
               "ui_group_node_old_naming.json", "ui_group_node_with_seed.json",
               "ui_subgraph_bypassed.json", "ui_rounding_and_replacements.json"]


@pytest.mark.parametrize("name", UI_FIXTURES)
def test_our_fixtures_convert_as_the_frontend_does(editor: Any, catalog: NodeCatalog, name: str) -> None:
    workflow = json.loads((FIXTURES / name).read_text())
    theirs = frontend_prompt(editor, workflow)
    stored = FIXTURES / name.replace(".json", ".frontend.json")
    if os.environ.get("FRONTEND_ORACLE_WRITE") == "1":
        stored.write_text(json.dumps(theirs, indent=1, sort_keys=True) + "\n")
    assert differences(convert_ui_workflow(workflow, catalog), theirs, catalog) == []
    assert json.loads(stored.read_text()) == theirs  # the stored copy is still what the frontend queues


def test_a_date_in_the_file_name_prefix_is_filled_in_as_the_frontend_does(editor: Any, catalog: NodeCatalog) -> None:
    # The frontend fills in %date:…% when it queues; we keep the token in the converted workflow and fill it in
    # per run (apply_run_replacements), which must give what the frontend gives at that moment.
    workflow = json.loads((FIXTURES / "ui_rounding_and_replacements.json").read_text())
    save = next(node for node in workflow["nodes"] if node["type"] == "SaveImage")
    save["widgets_values"] = ["%Folder.text%/%date:yyyy-MM-dd%_%date:yy.MM%_%width%"]
    before = apply_run_replacements(convert_ui_workflow(workflow, catalog))

    theirs = frontend_prompt(editor, workflow)

    after = apply_run_replacements(convert_ui_workflow(workflow, catalog))  # either side of midnight
    assert theirs["9"]["inputs"]["filename_prefix"] in {p["9"]["inputs"]["filename_prefix"] for p in (before, after)}
    assert theirs["9"]["inputs"]["filename_prefix"].endswith("_%date:yy.MM%_%width%")  # one dot: a node's widget


_WIDGET_CALLBACK = """([type, name, value]) => {
    const node = LiteGraph.createNode(type);
    const widget = node.widgets.find((w) => w.name === name);
    widget.value = value;
    widget.callback(widget.value);
    return widget.value;
}"""


@pytest.mark.parametrize(("node_type", "name", "value"), [
    ("KSampler", "denoise", 0.4999999999999999), ("KSampler", "denoise", 1.7), ("KSampler", "cfg", 7.55),
    ("KSampler", "cfg", 7.123456), ("KSampler", "steps", 20.5), ("KSampler", "steps", -2.5),
    ("EmptyLatentImage", "width", 516), ("EmptyLatentImage", "width", 13), ("LatentUpscaleBy", "scale_by", 1.3333),
    ("ImageBlur", "sigma", 0.123456), ("ImageScaleBy", "scale_by", 0.005),
])
def test_a_primitive_value_is_rounded_as_the_widget_callback_does(
        editor: Any, catalog: NodeCatalog, node_type: str, name: str, value: float) -> None:
    # A PrimitiveNode's applyToGraph passes its value through the target widget's callback: the real one is the oracle.
    spec = catalog[node_type].input(name)
    assert spec is not None
    assert primitive_value(spec, value) == editor.evaluate(_WIDGET_CALLBACK, [node_type, name, value])
