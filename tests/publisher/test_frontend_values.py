"""The text replacements the editor makes when it queues a prompt (publisher.frontend_values), and where they
happen: %Name.widget% when a workflow is converted, %date:…% at each run."""

from __future__ import annotations

import copy
from datetime import datetime

import pytest

from publisher import InputBinding, NodeCatalog, apply_values, convert_ui_workflow, load_workflow
from publisher.frontend_values import (
    DATES,
    NOT_FOUND,
    apply_run_replacements,
    format_date,
    js_string,
    primitive_value,
    replace_dates,
    replace_node_references,
    run_prompt,
)
from publisher.frontend_values import DYNAMIC as DYNAMIC_STEP

from .helpers import fixture_json

MOMENT = datetime(2026, 3, 7, 9, 5, 2)


@pytest.mark.parametrize(("pattern", "expected"), [
    ("yyyy-MM-dd", "2026-03-07"),
    ("yy/M/d", "26/3/7"),
    ("hh-mm-ss", "09-05-02"),
    ("h:m:s", "9:5:2"),
    ("yyy", "yyy"),  # not a date part in the editor either
    ("week", "week"),
    ("batch", "batc9"),  # any h is the hour, as in the editor
])
def test_dates_are_formatted_as_the_editor_does(pattern: str, expected: str) -> None:
    assert format_date(pattern, MOMENT) == expected


def test_only_date_tokens_are_filled_in_at_run_time() -> None:
    text = "%date:yyyy-MM-dd%/%Folder.text%_%width%_%date:yyyy.MM%"
    # a token with exactly one dot names a node and a widget, even when it starts with date:
    assert replace_dates(text, MOMENT) == "2026-03-07/%Folder.text%_%width%_%date:yyyy.MM%"


def test_node_references_take_the_widget_value_made_safe_for_a_file_name() -> None:
    values = {("Folder", "text"): "a/b:c", ("Sampler", "cfg"): 8.0, ("Sampler", "on"): True}

    def lookup(node: str, widget: str) -> object:
        return values.get((node, widget), NOT_FOUND)

    assert replace_node_references("%Folder.text%-%Sampler.cfg%-%Sampler.on%-%Nobody.x%-%date:yyyy%", lookup) \
        == "a_b_c-8-true-%Nobody.x%-%date:yyyy%"


@pytest.mark.parametrize(("value", "expected"), [
    (None, ""), (7.5, "7.5"), (8.0, "8"), (1e-7, "1e-7"), (1e21, "1e+21"), (False, "false"), (512, "512"),
])
def test_values_are_written_as_javascript_writes_them(value: object, expected: str) -> None:
    assert js_string(value) == expected


def test_a_run_gets_todays_date_and_the_stored_prompt_keeps_its_token() -> None:
    stored = {
        "1": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "out/%date:yyyy-MM-dd%"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "%date:yyyy%", "clip": ["4", 1]}},
    }
    kept = copy.deepcopy(stored)

    run = apply_run_replacements(stored, MOMENT)

    assert run["1"]["inputs"]["filename_prefix"] == "out/2026-03-07"
    assert run["3"]["inputs"]["text"] == "%date:yyyy%"  # the editor replaces only the save nodes' prefix
    assert stored == kept
    before = f"out/{datetime.now():%Y-%m-%d}"
    today = apply_run_replacements(stored)["1"]["inputs"]["filename_prefix"]  # no moment given: now
    assert today in {before, f"out/{datetime.now():%Y-%m-%d}"}  # either side of midnight


def test_a_converted_workflow_resolves_node_references_and_rounds_as_the_editor(catalog: NodeCatalog) -> None:
    # What the real editor queued for it is stored beside it (tests/browser/test_frontend_oracle.py writes it):
    # %Title.widget% by 'Node name for S&R', else by title (a node without one goes by its display name),
    # unknown references stay. A saved denoise of 0.4999999999999999 is queued as it is, but values that
    # PrimitiveNodes feed (cfg 7.123456, steps 20.6) go through the widget's rounding, and a reference to
    # such a widget reads the rounded value.
    ui = fixture_json("ui_rounding_and_replacements.json")
    prompt = convert_ui_workflow(ui, catalog)

    assert prompt == fixture_json("ui_rounding_and_replacements.frontend.json")
    ksampler = catalog["KSampler"]
    cfg = primitive_value(ksampler.input("cfg"), 7.123456)  # type: ignore[arg-type]
    assert prompt["3"]["inputs"]["cfg"] == cfg != 7.123456
    assert prompt["3"]["inputs"]["steps"] == 21
    assert prompt["3"]["inputs"]["denoise"] == 0.4999999999999999
    assert prompt["9"]["inputs"]["filename_prefix"].startswith(f"compare/model_vae_x_512_%Nobody.text%_{cfg}_")


def test_a_primitive_value_is_rounded_by_the_widget_it_feeds(catalog: NodeCatalog) -> None:
    # useFloatWidget: round to the declared `round`, else to 10^-precision, precision from `step`; written with
    # toFixed(precision) and clamped to min/max. useIntWidget: to the nearest step counted from min, halves up.
    ksampler, latent = catalog["KSampler"], catalog["EmptyLatentImage"]
    denoise, cfg, steps = (ksampler.input(name) for name in ("denoise", "cfg", "steps"))
    width = latent.input("width")
    assert denoise and cfg and steps and width
    assert primitive_value(denoise, 0.4999999999999999) == 0.5  # step 0.01: two decimals
    assert primitive_value(denoise, 1.7) == denoise.max  # clamped
    assert primitive_value(cfg, 7.55) == 7.5  # round 0.01 gives 7.55, written with step 0.1's one decimal
    assert primitive_value(steps, 20.5) == 21 and primitive_value(steps, -2.5) == -2  # Math.round
    assert primitive_value(width, 516) == 520  # step 8 from min 16: 516 is halfway
    assert primitive_value(cfg, True) is True and primitive_value(cfg, "7.5") == "7.5"


def test_a_date_in_a_converted_workflow_is_left_for_the_run(catalog: NodeCatalog) -> None:
    ui = fixture_json("ui_rounding_and_replacements.json")
    save = next(node for node in ui["nodes"] if node["type"] == "SaveImage")
    save["widgets_values"] = ["%Folder.text%/%date:yyyy-MM-dd%"]

    prompt = convert_ui_workflow(ui, catalog)

    assert prompt["9"]["inputs"]["filename_prefix"] == "compare/%date:yyyy-MM-dd%"
    assert apply_run_replacements(prompt, MOMENT)["9"]["inputs"]["filename_prefix"] == "compare/2026-03-07"


# ui_dynamic_prompts.json: texts with comments, escapes and {a|b} choices on plain nodes, fed by PrimitiveNodes (one
# with "Run widget replace on values" and a date), and inside a subgraph; .frontend.json: what the editor queued for
# the nodes whose text is fixed (written by tests/browser/test_frontend_oracle_values.py).
DYNAMIC = "ui_dynamic_prompts.json"


def test_fixed_dynamic_prompts_and_primitive_replacements_are_made_at_conversion(catalog: NodeCatalog) -> None:
    prompt = convert_ui_workflow(fixture_json(DYNAMIC), catalog)
    queued = fixture_json(DYNAMIC.replace(".json", ".frontend.json"))
    assert {node_id: node["inputs"].get("text") for node_id, node in prompt.items() if node_id in queued} == {
        node_id: node["inputs"].get("text") for node_id, node in queued.items()}
    # a random choice, or a date the primitive's replacements leave, waits for the run, named in _meta.per_run
    assert prompt["3"]["inputs"]["text"] == fixture_json(DYNAMIC)["nodes"][1]["widgets_values"][0]
    assert prompt["3"]["_meta"]["per_run"] == {"text": [DYNAMIC_STEP]}
    assert prompt["7"]["inputs"]["text"] == "20 steps on %date:yyyy-MM-dd%, {one|two}"  # %Sampler.steps% made now
    assert prompt["7"]["_meta"]["per_run"] == {"text": [DATES, DYNAMIC_STEP]}
    assert all("per_run" not in prompt[node_id]["_meta"] for node_id in queued)


def test_a_run_makes_what_waits_and_records_it(catalog: NodeCatalog) -> None:
    stored = convert_ui_workflow(fixture_json(DYNAMIC), catalog)
    binding = InputBinding(node="9", input="text", type="text", name="prompt")
    given = {"prompt": "{a|b} // c"}
    applied = apply_values(load_workflow(stored), [binding], given)

    prompt, recorded = run_prompt(applied.prompt, catalog, [binding], given, applied.values, moment=MOMENT,
                                  choose=lambda count: count - 1)

    texts = {node_id: node["inputs"].get("text") for node_id, node in prompt.items()}
    assert texts["3"] == "blue cat, huge "  # the last option each time; the comment gone
    assert texts["7"] == "20 steps on 2026-03-07, two"
    assert texts["9"] == "b "  # the caller's text, as the editor processes what is typed
    assert recorded == {"prompt": "b ", "3.text": texts["3"], "7.text": texts["7"]}
    assert {k: v for k, v in texts.items() if k not in ("3", "7", "9")} == {
        k: v["inputs"].get("text") for k, v in stored.items() if k not in ("3", "7", "9")}  # made once: not again
    assert stored["3"]["inputs"]["text"].startswith("{red|green|blue}")  # the stored workflow keeps its choices


def test_a_published_text_is_processed_only_when_the_caller_gives_it(catalog: NodeCatalog) -> None:
    ui = fixture_json(DYNAMIC)
    ui["nodes"][0]["widgets_values"] = ["kept \\{as made\\}"]
    stored = convert_ui_workflow(ui, catalog)
    assert stored["2"]["inputs"]["text"] == "kept {as made}"  # as the editor queues it; processed again: "kept as made"
    binding = InputBinding(node="2", input="text", type="text", name="prompt", default=stored["2"]["inputs"]["text"])
    applied = apply_values(load_workflow(stored), [binding], {})

    prompt, recorded = run_prompt(applied.prompt, catalog, [binding], {}, applied.values, choose=lambda count: 0)

    assert prompt["2"]["inputs"]["text"] == "kept {as made}" and recorded["prompt"] == "kept {as made}"
    api = {"1": {"class_type": "CLIPTextEncode", "inputs": {"text": "{x|y}", "clip": ["2", 1]}}}
    assert run_prompt(api, catalog, [], {}, {})[0] == api  # an API-format export was processed by its editor


def test_a_caller_text_nested_too_deep_is_refused_naming_node_and_input(catalog: NodeCatalog) -> None:
    api = {"6": {"class_type": "CLIPTextEncode", "inputs": {"text": "x", "clip": ["2", 1]}}}
    binding = InputBinding(node="6", input="text", type="text", name="prompt")
    deep = {"prompt": "{" * 300 + "a"}
    applied = apply_values(load_workflow(api), [binding], deep)
    with pytest.raises(ValueError, match=r"node 6 \(CLIPTextEncode\), input 'text': its \{…\|…\} choices are nested"):
        run_prompt(applied.prompt, catalog, [binding], deep, applied.values)


def test_a_legacy_group_nodes_texts_are_processed_like_its_own_widgets(catalog: NodeCatalog) -> None:
    # unlike a subgraph instance's widget (queued as it is), a group node's widget is serialized like any node's
    name = "ui_group_node_dynamic_prompts.json"
    queued = fixture_json(name.replace(".json", ".frontend.json"))
    assert convert_ui_workflow(fixture_json(name), catalog)["3:0"]["inputs"] == queued["3:0"]["inputs"]
