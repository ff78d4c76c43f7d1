"""Applying a run's values to the workflow: checked, complete, seeded, and never in place."""

from __future__ import annotations

import copy
import random

import pytest

from publisher import (
    BindingError,
    InputBinding,
    InputValueError,
    InputValuesError,
    NodeCatalog,
    Workflow,
    apply_values,
    bindings_from_candidates,
    check_bindings,
    suggested_candidates,
)
from tests.publisher.helpers import fixture_workflow, shipped_workflow

SEED_MAX = 0xFFFFFFFFFFFFFFFF


@pytest.fixture
def txt2img() -> Workflow:
    return shipped_workflow("txt2img_sd15.json")


@pytest.fixture
def bindings(txt2img: Workflow, catalog: NodeCatalog) -> list[InputBinding]:
    return bindings_from_candidates(suggested_candidates(txt2img, catalog))


@pytest.fixture
def sampler_binding(catalog: NodeCatalog) -> InputBinding:
    spec = catalog["KSampler"].input("sampler_name")
    assert spec is not None
    return InputBinding(node="3", input="sampler_name", type="choice", label="Sampler", choices=spec.choices)


def _errors(
    workflow: Workflow, bindings: list[InputBinding], values: dict[str, object]
) -> list[InputValueError]:
    with pytest.raises(InputValuesError) as info:
        apply_values(workflow, bindings, values, rng=random.Random(0))
    return list(info.value.errors)


def _one_error(
    workflow: Workflow, bindings: list[InputBinding], values: dict[str, object]
) -> InputValueError:
    (error,) = _errors(workflow, bindings, values)
    return error


def test_bindings_from_suggested_candidates(bindings: list[InputBinding]) -> None:
    assert [(b.name, b.node, b.input, b.type) for b in bindings] == [
        ("ksampler_seed", "3", "seed", "seed"),
        ("ksampler_steps", "3", "steps", "int"),
        ("ksampler_cfg", "3", "cfg", "float"),
        ("ksampler_denoise", "3", "denoise", "float"),
        ("load_checkpoint", "4", "ckpt_name", "choice"),
        ("empty_latent_image_width", "5", "width", "int"),
        ("empty_latent_image_height", "5", "height", "int"),
        ("empty_latent_image_batch_size", "5", "batch_size", "int"),
        ("prompt", "6", "text", "text"),
        ("negative_prompt", "7", "text", "text"),
    ]
    seed = bindings[0]
    assert (seed.randomize, seed.min, seed.max, seed.default, seed.required) == (
        True,
        0,
        SEED_MAX,
        156680208700286,
        False,
    )


def test_values_are_applied_and_recorded(txt2img: Workflow, bindings: list[InputBinding]) -> None:
    applied = apply_values(
        txt2img,
        bindings,
        {"prompt": "a red fox", "ksampler_steps": 4, "ksampler_seed": 1234, "ksampler_cfg": 3},
    )
    assert applied.prompt["6"]["inputs"]["text"] == "a red fox"
    assert applied.prompt["3"]["inputs"]["steps"] == 4
    assert applied.prompt["3"]["inputs"]["seed"] == 1234
    assert applied.prompt["3"]["inputs"]["cfg"] == 3.0 and isinstance(
        applied.prompt["3"]["inputs"]["cfg"], float
    )
    assert applied.prompt["3"]["inputs"]["positive"] == ["6", 0]  # links untouched
    assert applied.values == {
        "ksampler_seed": 1234,
        "ksampler_steps": 4,
        "ksampler_cfg": 3.0,
        "ksampler_denoise": 1.0,
        "load_checkpoint": "v1-5-pruned-emaonly.safetensors",
        "empty_latent_image_width": 512,
        "empty_latent_image_height": 512,
        "empty_latent_image_batch_size": 1,
        "prompt": "a red fox",
        "negative_prompt": "text, watermark",
    }


def test_original_workflow_is_never_mutated(txt2img: Workflow, bindings: list[InputBinding]) -> None:
    before = copy.deepcopy(txt2img.nodes)
    applied = apply_values(txt2img, bindings, {"prompt": "changed", "empty_latent_image_width": 64})
    applied.prompt["3"]["inputs"]["model"][0] = "999"
    assert txt2img.nodes == before
    second = apply_values(txt2img, bindings, {})
    assert second.prompt["6"]["inputs"]["text"] == before["6"]["inputs"]["text"]


def test_missing_seed_is_drawn_and_recorded(txt2img: Workflow, bindings: list[InputBinding]) -> None:
    applied = apply_values(txt2img, bindings, {}, rng=random.Random(7))
    expected = random.Random(7).randint(0, 2**53 - 1)
    assert applied.values["ksampler_seed"] == expected
    assert applied.prompt["3"]["inputs"]["seed"] == expected
    again = apply_values(txt2img, bindings, {"ksampler_seed": None}, rng=random.Random(7))
    assert again.values["ksampler_seed"] == expected


def test_seed_minus_one_draws_even_without_randomize(txt2img: Workflow) -> None:
    fixed = InputBinding(
        node="3", input="seed", type="seed", name="seed", min=0, max=SEED_MAX, randomize=False
    )
    applied = apply_values(txt2img, [fixed], {"seed": -1}, rng=random.Random(3))
    assert applied.values["seed"] == random.Random(3).randint(0, 2**53 - 1)
    # without randomize and without a value, the workflow's seed stays
    assert apply_values(txt2img, [fixed], {}).values["seed"] == 156680208700286


def test_seed_draw_respects_a_small_schema_range(txt2img: Workflow) -> None:
    small = InputBinding(node="3", input="seed", type="seed", name="seed", min=10, max=12, randomize=True)
    drawn = {apply_values(txt2img, [small], {}, rng=random.Random(i)).values["seed"] for i in range(40)}
    assert drawn == {10, 11, 12}


def test_explicit_seed_up_to_the_engine_max(txt2img: Workflow, bindings: list[InputBinding]) -> None:
    assert apply_values(txt2img, bindings, {"ksampler_seed": SEED_MAX}).values["ksampler_seed"] == SEED_MAX
    error = _one_error(txt2img, bindings, {"ksampler_seed": SEED_MAX + 1})
    assert error.message == f"{SEED_MAX + 1} is above the maximum {SEED_MAX}"
    assert error.allowed == {"min": 0, "max": SEED_MAX}


def test_int_rules(txt2img: Workflow, bindings: list[InputBinding]) -> None:
    assert apply_values(txt2img, bindings, {"ksampler_steps": 5.0}).values["ksampler_steps"] == 5
    assert apply_values(txt2img, bindings, {"ksampler_steps": " 12 "}).values["ksampler_steps"] == 12
    for bad, shown in ((True, "true"), (2.5, "2.5"), ("2.5", '"2.5"'), ("many", '"many"'), ([3], "[3]")):
        error = _one_error(txt2img, bindings, {"ksampler_steps": bad})
        assert (error.input, error.node, error.node_input) == ("ksampler_steps", "3", "steps")
        assert error.message == f"expected a whole number, got {shown}"
        assert error.allowed == "integer"


def test_int_range(txt2img: Workflow, bindings: list[InputBinding]) -> None:
    error = _one_error(txt2img, bindings, {"ksampler_steps": 0})
    assert error.message == "0 is below the minimum 1"
    assert error.allowed == {"min": 1, "max": 10000}
    assert (
        str(error) == "'ksampler_steps' (node 3, input 'steps'): 0 is below the minimum 1; allowed: 1..10000"
    )


def test_float_rules(txt2img: Workflow, bindings: list[InputBinding]) -> None:
    assert apply_values(txt2img, bindings, {"ksampler_cfg": "6.5"}).values["ksampler_cfg"] == 6.5
    for bad, shown in ((False, "false"), ("x", '"x"'), (float("nan"), "NaN"), (float("inf"), "Infinity")):
        error = _one_error(txt2img, bindings, {"ksampler_cfg": bad})
        assert error.message == f"expected a number, got {shown}"
    error = _one_error(txt2img, bindings, {"ksampler_cfg": 100.5})
    assert (error.message, error.allowed) == ("100.5 is above the maximum 100.0", {"min": 0.0, "max": 100.0})


def test_text_rule(txt2img: Workflow, bindings: list[InputBinding]) -> None:
    error = _one_error(txt2img, bindings, {"prompt": 5})
    assert (error.input, error.node, error.node_input, error.message) == (
        "prompt",
        "6",
        "text",
        "expected text, got 5",
    )
    assert apply_values(txt2img, bindings, {"prompt": ""}).values["prompt"] == ""


def test_long_choice_list_is_truncated(txt2img: Workflow, sampler_binding: InputBinding) -> None:
    count = len(sampler_binding.choices)
    assert count > 20
    error = _one_error(txt2img, [sampler_binding], {"sampler": "warp_drive"})
    assert error.message == f'"warp_drive" is not one of the {count} choices'
    assert error.allowed == sampler_binding.choices[:20]
    assert str(error).endswith(f"... and {count - 20} more ({count} in all)")
    assert '"euler", "euler_cfg_pp"' in str(error)
    ok = apply_values(txt2img, [sampler_binding], {"sampler": "dpmpp_2m"})
    assert ok.prompt["3"]["inputs"]["sampler_name"] == "dpmpp_2m"


def test_short_choice_list_is_complete(txt2img: Workflow) -> None:
    binding = InputBinding(node="3", input="scheduler", type="choice", name="s", choices=("normal", "karras"))
    error = _one_error(txt2img, [binding], {"s": "simple"})
    assert error.allowed == ("normal", "karras")
    assert str(error) == (
        "'s' (node 3, input 'scheduler'): \"simple\" is not one of the 2 choices; "
        'allowed: "normal", "karras"'
    )


def test_choice_without_known_choices_is_left_to_the_engine(txt2img: Workflow) -> None:
    # e.g. ckpt_name on a fresh engine with no model files yet
    binding = InputBinding(node="4", input="ckpt_name", type="choice", name="ckpt", choices=())
    assert (
        apply_values(txt2img, [binding], {"ckpt": "other.safetensors"}).values["ckpt"] == "other.safetensors"
    )
    assert _one_error(txt2img, [binding], {"ckpt": 1.5}).message == "expected a choice (text), got 1.5"


def test_bool_rule() -> None:
    wf = fixture_workflow("custom_nodes.json")
    binding = InputBinding(node="10", input="mode", type="bool", name="mode")
    assert apply_values(wf, [binding], {"mode": "FALSE"}).prompt["10"]["inputs"]["mode"] is False
    assert apply_values(wf, [binding], {"mode": False}).values["mode"] is False
    error = _one_error(wf, [binding], {"mode": 1})
    assert (error.message, error.allowed) == ("expected true or false, got 1", "boolean")


def test_image_rule() -> None:
    wf = fixture_workflow("img2img.json")
    binding = InputBinding(node="10", input="image", type="image", label="Photo", required=True)
    assert binding.name == "photo"
    applied = apply_values(wf, [binding], {"photo": "uploads/cat.png"})
    assert applied.prompt["10"]["inputs"]["image"] == "uploads/cat.png"
    for bad in ("../secret.png", "/etc/passwd", "a/../../b.png", "C:\\x.png"):
        error = _one_error(wf, [binding], {"photo": bad})
        assert (
            error.message
            == f'"{bad}" is not a plain upload name; use the name returned by the upload'.replace(
                "\\", "\\\\"
            )
        )
    assert _one_error(wf, [binding], {"photo": ""}).message == 'expected a file name from an upload, got ""'
    missing = _one_error(wf, [binding], {})
    assert (missing.input, missing.message, missing.allowed) == ("photo", "a value is required", None)
    assert str(missing) == "'photo' (node 10, input 'image'): a value is required"


def test_default_is_used_when_no_value(txt2img: Workflow) -> None:
    binding = InputBinding(node="3", input="steps", type="int", name="steps", default=9, required=True)
    assert apply_values(txt2img, [binding], {}).prompt["3"]["inputs"]["steps"] == 9


def test_unknown_names_list_the_known_ones(txt2img: Workflow, bindings: list[InputBinding]) -> None:
    error = _one_error(txt2img, bindings, {"prompt": "ok", "promt": "typo"})
    assert (error.input, error.node, error.node_input, error.message) == (
        "promt",
        None,
        None,
        "unknown input",
    )
    assert error.allowed == tuple(sorted(b.name for b in bindings))
    assert str(error) == "'promt': unknown input; allowed: " + ", ".join(
        f'"{n}"' for n in sorted(b.name for b in bindings)
    )


def test_all_errors_are_raised_together(txt2img: Workflow, bindings: list[InputBinding]) -> None:
    with pytest.raises(InputValuesError) as info:
        apply_values(
            txt2img, bindings, {"ksampler_steps": 0, "prompt": None, "negative_prompt": 3, "bogus": 1}
        )
    error = info.value
    assert isinstance(error, ValueError)
    assert [(e.input, e.message) for e in error.errors] == [
        ("bogus", "unknown input"),
        ("ksampler_steps", "0 is below the minimum 1"),
        ("negative_prompt", "expected text, got 3"),
    ]
    lines = str(error).splitlines()
    assert lines[0] == "3 input values rejected:"
    assert (
        lines[2] == "- 'ksampler_steps' (node 3, input 'steps'): 0 is below the minimum 1; allowed: 1..10000"
    )


def test_binding_names_and_types() -> None:
    assert InputBinding(node="3", input="seed", type="seed").name == "3.seed"
    assert (
        InputBinding(node="6", input="text", type="text", label="Crème brûlée & Co!").name
        == "creme_brulee_co"
    )
    assert InputBinding(node="6", input="text", type="text", label="x", name="custom").name == "custom"
    with pytest.raises(ValueError, match="unknown input type 'number'"):
        InputBinding(node="3", input="seed", type="number")  # type: ignore[arg-type]


def test_duplicate_labels_get_distinct_names(catalog: NodeCatalog) -> None:
    chosen = [c for c in suggested_candidates(fixture_workflow("txt2img_controlnet_combine.json"), catalog)]
    names = [b.name for b in bindings_from_candidates(chosen)]
    assert len(names) == len(set(names))
    assert {"subject", "prompt", "negative_prompt", "pose"} <= set(names)


def test_check_bindings_catches_publishing_mistakes(txt2img: Workflow) -> None:
    bad = [
        InputBinding(node="3", input="steps", type="int", name="a"),
        InputBinding(node="3", input="cfg", type="float", name="a"),
        InputBinding(node="42", input="x", type="int", name="b"),
        InputBinding(node="3", input="model", type="text", name="c"),
    ]
    with pytest.raises(BindingError) as info:
        check_bindings(txt2img, bad)
    assert str(info.value) == (
        "input name 'a' is used twice; 'b' targets node '42', which is not in the workflow; "
        "'c' targets input 'model' of node '3', which is a link, not a value"
    )
    with pytest.raises(BindingError):
        apply_values(txt2img, bad, {})
