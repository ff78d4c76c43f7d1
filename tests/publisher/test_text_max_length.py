"""Text inputs have a maximum length: a default in the spec, chosen per input at publish, kept by old specs."""

from __future__ import annotations

import json
import math

import pytest

from publisher import AppSpec, AppSpecError, InputValuesError, NodeCatalog, apply_values, build_app_spec
from publisher.apply import DEFAULT_TEXT_MAX_LENGTH
from runtimes.inputs import InputProblems, check_values
from tests.publisher.helpers import shipped_workflow

PROMPT = {"node": "6", "input": "text", "name": "prompt"}


def _spec(catalog: NodeCatalog, *inputs: dict[str, object]) -> AppSpec:
    return build_app_spec(shipped_workflow("txt2img_sd15.json"), catalog, list(inputs))


def test_text_past_the_default_limit_is_refused_with_its_length(catalog: NodeCatalog) -> None:
    spec = _spec(catalog, PROMPT)
    assert spec.inputs[0].max_length == DEFAULT_TEXT_MAX_LENGTH
    apply_values(spec.loaded_workflow, spec.inputs, {"prompt": "a" * DEFAULT_TEXT_MAX_LENGTH})  # at the limit
    too_long = "a" * 2**20
    with pytest.raises(InputValuesError) as caught:
        apply_values(spec.loaded_workflow, spec.inputs, {"prompt": too_long})
    (error,) = caught.value.errors
    assert (error.input, error.node, error.node_input) == ("prompt", "6", "text")
    assert error.message == f"the text is {2**20} characters long, over the limit of {DEFAULT_TEXT_MAX_LENGTH}"
    assert error.allowed == {"max_length": DEFAULT_TEXT_MAX_LENGTH}
    assert len(str(caught.value)) < 300  # the value itself is never echoed


def test_the_publisher_chooses_the_limit(catalog: NodeCatalog) -> None:
    spec = _spec(catalog, {**PROMPT, "max_length": 20, "default": "a red fox"})
    assert spec.inputs[0].max_length == 20 and spec.inputs[0].schema()["max_length"] == 20
    with pytest.raises(InputValuesError, match="21 characters long, over the limit of 20"):
        apply_values(spec.loaded_workflow, spec.inputs, {"prompt": "b" * 21})


def test_an_old_spec_without_the_field_reads_the_default(catalog: NodeCatalog) -> None:
    """Versions published before the limit existed (and the deployments baked from them) get it too: the
    endpoint and worker of a deployment check values through the same check_values."""
    stored = _spec(catalog, PROMPT).to_dict()
    for item in stored["inputs"]:
        del item["max_length"]
    old = AppSpec.from_dict(json.loads(json.dumps(stored)))
    assert old.inputs[0].max_length == DEFAULT_TEXT_MAX_LENGTH
    with pytest.raises(InputProblems) as caught:
        check_values(old, {"prompt": "c" * (DEFAULT_TEXT_MAX_LENGTH + 1)}, {}, [])
    assert "over the limit of 10000" in str(caught.value.problems)


def test_numbers_have_no_max_length(catalog: NodeCatalog) -> None:
    spec = _spec(catalog, {"node": "5", "input": "width"})
    assert spec.inputs[0].max_length is None and "max_length" not in spec.inputs[0].schema()


@pytest.mark.parametrize(("extra", "expected"), [
    ({**PROMPT, "max_length": 0}, "max_length must be a whole number of characters from 1 to 1000000, got 0"),
    ({**PROMPT, "max_length": "long"}, "max_length must be a whole number of characters"),
    ({"node": "5", "input": "width", "max_length": 5}, "max_length only applies to text inputs; this one is int"),
    ({**PROMPT, "max_length": 5}, "default of input 'prompt': the text is"),  # the workflow's prompt is longer
])
def test_bad_limits_are_refused_at_publish(catalog: NodeCatalog, extra: dict[str, object], expected: str) -> None:
    with pytest.raises(AppSpecError) as caught:
        _spec(catalog, extra)
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


@pytest.mark.parametrize("bound", ["min", "max", "step"])
def test_bounds_that_are_not_finite_are_refused(catalog: NodeCatalog, bound: str) -> None:
    """JSON parsed by Python accepts NaN; a NaN minimum would let every value through."""
    with pytest.raises(AppSpecError, match=f"{bound} must be a finite number"):
        _spec(catalog, {"node": "5", "input": "width", bound: math.nan})
