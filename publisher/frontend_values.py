"""Text replacements the ComfyUI frontend makes in widget values when it queues a prompt.

The frontend (comfyui-frontend-package 1.32.9, ``applyTextReplacements`` and its ``Comfy.SaveImageExtraOutput``
extension) rewrites the ``filename_prefix`` of the save nodes below, replacing each ``%…%`` token:

- ``%Name.widget%``: the value of that widget on the first node whose ``Node name for S&R`` property, else whose
  title, is ``Name`` (nodes inside subgraphs before their instance). Characters a file name cannot hold become ``_``.
- ``%date:yyyy-MM-dd%`` (a token without exactly one dot): the moment of queueing, formatted.
- anything else (``%width%``, an unknown node or widget) stays as it is.

References to nodes are resolved when a workflow is converted (they refer to the saved graph); dates are left
in the stored workflow and filled in per run (``apply_run_replacements``), so a published app does not freeze
the day it was published.

A PrimitiveNode whose ``Run widget replace on values`` property is on makes the same replacements in its value
before it copies it into the widgets it feeds (``widgetInputs``' applyToGraph). Text inputs whose option says
``dynamicPrompts`` are processed by the editor's dynamic prompts (:mod:`publisher.dynamic_prompts`). What has to wait
for the run (a date, a random choice) is named in the node's ``_meta.per_run`` (``{input: ["dates",
"dynamic_prompts"]}``, in the order the editor applies them) and done per run by ``finish_for_run``, which also
processes a caller's value of an input with the ``dynamicPrompts`` option, as the editor does with what is typed.

Numbers: a saved widget value is queued as it is, but a PrimitiveNode passes its value through the target
widget's change callback when the prompt is built (``applyToGraph``), and that callback rounds it by the widget's
options (``useFloatWidget`` / ``useIntWidget``): see ``primitive_value``.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from .dynamic_prompts import DYNAMIC_PROMPTS, Choose, dynamic_prompt
from .node_schema import InputSpec, NodeCatalog

if TYPE_CHECKING:
    from .apply import InputBinding  # apply imports the converter, which imports this module

# The node types whose filename_prefix the frontend rewrites (Comfy.SaveImageExtraOutput).
REPLACING_NODE_TYPES = frozenset({
    "SaveImage", "SaveVideo", "SaveAnimatedWEBP", "SaveWEBM", "SaveAudio", "SaveGLB", "SaveAnimatedPNG",
    "CLIPSave", "VAESave", "ModelSave", "LoraSave", "SaveLatent",
})
REPLACED_INPUT = "filename_prefix"
RUN_WIDGET_REPLACE = "Run widget replace on values"  # the PrimitiveNode property
PER_RUN = "per_run"  # the key of a node's _meta naming what each run does to its inputs
DATES, DYNAMIC = "dates", "dynamic_prompts"

_TOKEN = re.compile(r"%([^%]+)%")
_UNSAFE = re.compile(r'[/?<>\\:*|"\x00-\x1f\x7f]')
_DATE_PART = re.compile(r"dd?|MM?|hh?|mm?|ss?|yyy?y?")

# A widget lookup: (node name, widget name) -> the widget's value, or NOT_FOUND.
NOT_FOUND = object()
WidgetLookup = Callable[[str, str], object]


def js_string(value: object) -> str:
    """``value + ""`` as JavaScript writes it (true, 8 for 8.0, 1e-7), for values a widget holds."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        text = repr(value)
        if "e" in text:  # Python writes 1e-07 and 1e+21, JavaScript 1e-7 and 1e+21
            mantissa, exponent = text.split("e")
            sign = "-" if exponent.startswith("-") else "+"
            text = f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0') or '0'}"
        return text
    return str(value)


def format_date(pattern: str, moment: datetime) -> str:
    """The frontend's ``formatDate``: yyyy, yy, MM, dd, hh (0-23), mm, ss; M, d, h, m, s without padding."""

    def part(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "yy":
            return str(moment.year)[2:]
        if token == "yyyy":
            return str(moment.year)
        numbers = {"d": moment.day, "M": moment.month, "h": moment.hour, "m": moment.minute, "s": moment.second}
        if token[0] in numbers:
            return str(numbers[token[0]]).rjust(len(token), "0")
        return token  # "yyy" stays, as in the frontend

    return _DATE_PART.sub(part, pattern)


def _replace(text: str, *, lookup: WidgetLookup | None, moment: datetime | None) -> str:
    def one(match: re.Match[str]) -> str:
        pieces = match.group(1).split(".")
        if len(pieces) != 2:
            if moment is not None and pieces[0].startswith("date:"):
                return format_date(pieces[0][len("date:"):], moment)
            return match.group(0)
        if lookup is None:
            return match.group(0)
        value = lookup(pieces[0], pieces[1])
        return match.group(0) if value is NOT_FOUND else _UNSAFE.sub("_", js_string(value))

    return _TOKEN.sub(one, text)


def has_dates(text: str) -> bool:
    """Whether `text` holds a ``%date:…%`` token (which each run fills in)."""
    return any(len(m.group(1).split(".")) != 2 and m.group(1).startswith("date:") for m in _TOKEN.finditer(text))


def replace_node_references(text: str, lookup: WidgetLookup) -> str:
    """Resolve ``%Name.widget%`` tokens; dates and unknown tokens stay for later (or for good)."""
    return _replace(text, lookup=lookup, moment=None)


def replace_dates(text: str, moment: datetime) -> str:
    """Fill in ``%date:…%`` tokens for the given moment; everything else stays."""
    return _replace(text, lookup=None, moment=moment)


def replaced_inputs(prompt: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(node id, input name) of the text inputs the frontend rewrites in an API-format prompt."""
    return [
        (node_id, REPLACED_INPUT) for node_id, node in prompt.items()
        if node.get("class_type") in REPLACING_NODE_TYPES
        and isinstance((node.get("inputs") or {}).get(REPLACED_INPUT), str)
    ]


def apply_run_replacements(
    prompt: dict[str, dict[str, Any]], moment: datetime | None = None
) -> dict[str, dict[str, Any]]:
    """The prompt with its date tokens filled in for this run (the local time now unless given); a copy where
    anything changes, so the stored workflow keeps its tokens."""
    when = moment or datetime.now()
    result = prompt
    for node_id, name in replaced_inputs(prompt):
        before = prompt[node_id]["inputs"][name]
        after = replace_dates(before, when)
        if after != before:
            if result is prompt:
                result = dict(prompt)
            result[node_id] = {**prompt[node_id], "inputs": {**prompt[node_id]["inputs"], name: after}}
    return result


def has_dynamic_prompts(spec: InputSpec | None) -> bool:
    return spec is not None and spec.type == "STRING" and spec.options.get(DYNAMIC_PROMPTS) is True


def per_run_steps(node: Mapping[str, Any], name: str) -> list[str]:
    """What each run does to input `name` of an API-format node, as its ``_meta.per_run`` says (read leniently)."""
    meta = node.get("_meta")
    marked = meta.get(PER_RUN) if isinstance(meta, Mapping) else None
    steps = marked.get(name) if isinstance(marked, Mapping) else None
    return [step for step in (DATES, DYNAMIC) if isinstance(steps, list) and step in steps]


def finish_for_run(
    prompt: dict[str, dict[str, Any]], catalog: NodeCatalog, given: Collection[tuple[str, str]],
    *, moment: datetime | None = None, choose: Choose | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str], str]]:
    """The prompt with what the editor does when it queues done for this run: the steps ``_meta.per_run`` names, and
    dynamic prompts on the `given` (node id, input) values (a caller's) whose input has that option. Returns a copy
    where anything changes, and the texts made, by (node id, input). Raises ValueError naming the node and input
    for a text whose choices nest too deep."""
    when = moment or datetime.now()
    pick = choose or random.SystemRandom().randrange
    result, made = prompt, {}
    for node_id, node in prompt.items():
        inputs = node.get("inputs") or {}
        schema = catalog.get(str(node.get("class_type")))
        for name, value in inputs.items():
            steps = per_run_steps(node, name)
            if (node_id, name) in given and schema is not None and has_dynamic_prompts(schema.input(name)) \
                    and DYNAMIC not in steps:
                steps.append(DYNAMIC)
            if not steps or not isinstance(value, str):
                continue
            text = replace_dates(value, when) if DATES in steps else value
            try:
                text = dynamic_prompt(text, pick) if DYNAMIC in steps else text
            except ValueError as exc:
                raise ValueError(f"node {node_id} ({node.get('class_type')}), input '{name}': {exc}") from None
            made[(node_id, name)] = text
            if result is prompt:
                result = dict(prompt)
            result[node_id] = {**result[node_id], "inputs": {**result[node_id]["inputs"], name: text}}
    return result, made


def run_prompt(
    prompt: dict[str, dict[str, Any]], catalog: NodeCatalog, bindings: Iterable[InputBinding],
    values: Mapping[str, object], applied: Mapping[str, Any], *, moment: datetime | None = None,
    choose: Choose | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """A prompt with its values applied (`applied` by binding name, from `values` the caller gave), finished for
    this run as the editor finishes what it queues (save-node dates, ``_meta.per_run``, dynamic prompts on the
    caller's texts). Returns it and the values as applied: a published input's text as it was made, and each text
    the run made for the workflow itself under ``"<node id>.<input>"`` (no published input's name has a dot)."""
    bindings = list(bindings)
    given = {(b.node, b.input) for b in bindings if values.get(b.name) is not None}
    finished, made = finish_for_run(apply_run_replacements(prompt, moment), catalog, given, moment=moment,
                                    choose=choose)
    recorded = dict(applied)
    bound = {(b.node, b.input): b.name for b in bindings}
    for (node_id, name), text in made.items():
        recorded[bound.get((node_id, name), f"{node_id}.{name}")] = text
    return finished, recorded


def _js_round(value: float) -> float:
    """JavaScript's Math.round: halves go up (toward +infinity), unlike Python's round."""
    down = math.floor(value)
    return down + 1 if value - down >= 0.5 else down


def _to_fixed(value: float, digits: int) -> float:
    """``Number(value.toFixed(digits))``: the exact binary value rounded half away from zero."""
    return float(Decimal(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def _float_widget_value(spec: InputSpec, value: float) -> float:
    # useFloatWidget with the default settings (FloatRoundingPrecision 0 = auto, rounding on), then onFloatValueChange
    step = spec.step if spec.step is not None else 0.5
    if step <= 0:
        return value
    precision = max(0, -math.floor(math.log10(step)))
    declared = spec.options.get("round")
    rounding = 10 ** -precision if precision and not declared else declared
    if isinstance(rounding, bool) or not isinstance(rounding, int | float) or not rounding:
        return value
    fixed = _to_fixed(_js_round(value / rounding) * rounding, precision)
    low = spec.min if spec.min is not None else 0
    high = spec.max if spec.max is not None else 2048
    return min(max(fixed, low), high)


def _int_widget_value(spec: InputSpec, value: float) -> float:
    # useIntWidget's onValueChange: to the nearest step counted from min (not clamped)
    step = spec.step or 1
    if step == 1:
        return _js_round(value)
    offset = math.fmod(spec.min if spec.min is not None else 0, step)
    return _js_round((value - offset) / step) * step + offset


def primitive_value(spec: InputSpec, value: object) -> object:
    """The value a PrimitiveNode gives the widget `spec` when the frontend queues: rounded by that widget's options."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return value
    if spec.type == "FLOAT":
        result = _float_widget_value(spec, value)
    elif spec.type == "INT":
        result = _int_widget_value(spec, value)
    else:
        return value
    if isinstance(value, int) and float(result).is_integer():
        return int(result)  # JSON has one number type: 8.0 and 8 are the same to the frontend
    return result
