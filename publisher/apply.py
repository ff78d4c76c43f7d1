"""Putting a run's input values into a copy of the workflow, checking each value first.

Value rules (the same for the form and the REST API):

- int / seed: an int, an integral float (``5.0``) or a string of an int (``"42"``, as forms and
  query strings send); booleans and non-integral numbers are rejected. Range is min..max.
- float: an int, a float or a numeric string; booleans, NaN and infinities are rejected.
- bool: a bool or the strings "true"/"false" (any case).
- text: a string of at most ``max_length`` characters (``DEFAULT_TEXT_MAX_LENGTH`` unless the
  publisher chose otherwise; a stored spec without the field reads as the default).
- choice: exactly one of the choices; an empty choice list (for example model
  files a fresh engine does not have yet) is left to the engine to check.
- image / video / audio / file: an engine file name (``subfolder/name`` from an upload); absolute
  paths and ``..`` are rejected.
- seed: a missing value (or None) draws a fresh seed when ``randomize`` is on; ``-1`` always draws
  one. Draws stay within the schema range and at most 2**53-1, so a browser client (JS numbers)
  can send the recorded seed back exactly; any explicit value up to the schema max is accepted.
- a missing value uses the binding's default; with no default it is an error when the binding is
  required, otherwise the workflow's own value stays. Unknown value names are errors.

All problems are collected and raised together as one :class:`InputValuesError`.
"""

from __future__ import annotations

import copy
import math
import random
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from .candidates import CandidateInput
from .quoting import quote
from .workflow import Workflow, is_link

BindingType = Literal["text", "int", "float", "bool", "choice", "seed", "image", "video", "audio", "file"]
BINDING_TYPES: frozenset[str] = frozenset(get_args(BindingType))
FILE_TYPES = frozenset({"image", "video", "audio", "file"})

SEED_MAX = 0xFFFFFFFFFFFFFFFF  # the engine's own seed maximum
SEED_DRAW_MAX = 2**53 - 1  # largest integer a JSON number keeps exactly in JavaScript
MAX_LISTED = 20  # the engine also stops listing choices after 20
# A prompt is rarely longer; a 1 MiB one held the engine's only worker for minutes.
DEFAULT_TEXT_MAX_LENGTH = 10_000
TEXT_MAX_LENGTH_LIMIT = 1_000_000  # the most a publisher may allow


def slugify(text: str) -> str:
    """``"Positive prompt"`` -> ``"positive_prompt"``: a name usable as a JSON/form field."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")


@dataclass(frozen=True)
class InputBinding:
    """Ties one published input (by ``name``) to a node input of the workflow."""

    node: str
    input: str
    type: BindingType
    name: str = ""  # API name; derived from the label, else "<node>.<input>"
    label: str = ""
    default: Any = None
    min: int | float | None = None
    max: int | float | None = None
    step: int | float | None = None
    choices: tuple[Any, ...] = ()
    required: bool = False
    randomize: bool = False
    max_length: int | None = None  # text only: the most characters a value may have

    def __post_init__(self) -> None:
        if self.type not in BINDING_TYPES:
            raise ValueError(f"unknown input type {self.type!r}; use one of {sorted(BINDING_TYPES)}")
        if self.type == "text" and self.max_length is None:
            object.__setattr__(self, "max_length", DEFAULT_TEXT_MAX_LENGTH)
        if not self.name:
            object.__setattr__(self, "name", slugify(self.label) or f"{self.node}.{self.input}")
        object.__setattr__(self, "choices", tuple(self.choices))


def _listing(values: Iterable[Any]) -> tuple[tuple[Any, ...], str]:
    """The first MAX_LISTED values and a text that says how many were left out."""
    items = tuple(values)
    shown = items[:MAX_LISTED]
    text = ", ".join(quote(v) for v in shown)
    if len(items) > MAX_LISTED:
        text += f" ... and {len(items) - MAX_LISTED} more ({len(items)} in all)"
    return shown, text


class InputValueError(ValueError):
    """One rejected value. ``allowed`` is what would be accepted: a tuple of values (choices or
    known names, at most 20), a ``{"min", "max"}`` dict for ranges, or a type description."""

    def __init__(
        self,
        input: str,
        message: str,
        *,
        node: str | None = None,
        node_input: str | None = None,
        allowed: Any = None,
        allowed_text: str | None = None,
    ) -> None:
        self.input = input
        self.node = node
        self.node_input = node_input
        self.message = message
        self.allowed = allowed
        self.allowed_text = allowed_text
        where = f" (node {node}, input '{node_input}')" if node is not None else ""
        text = f"'{input}'{where}: {message}"
        if allowed_text is not None:
            text += f"; allowed: {allowed_text}"
        super().__init__(text)


class InputValuesError(ValueError):
    """All rejected values of one request, raised together."""

    def __init__(self, errors: Iterable[InputValueError]) -> None:
        self.errors: tuple[InputValueError, ...] = tuple(errors)
        count = len(self.errors)
        lines = "\n".join(f"- {e}" for e in self.errors)
        super().__init__(f"{count} input value{'s' if count != 1 else ''} rejected:\n{lines}")


class _Reject(Exception):
    """Internal: a value failed; converted to InputValueError with the binding's details."""

    def __init__(self, message: str, allowed: Any = None, allowed_text: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.allowed = allowed
        self.allowed_text = allowed_text


@dataclass(frozen=True)
class AppliedPrompt:
    prompt: dict[str, dict[str, Any]]  # ready to submit
    values: dict[str, Any] = field(default_factory=dict)  # by binding name, as applied (seed included)


def _to_int(value: object) -> int:
    if isinstance(value, bool):
        raise _Reject(f"expected a whole number, got {quote(value)}", "integer", "whole numbers")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise _Reject(f"expected a whole number, got {quote(value)}", "integer", "whole numbers")


def _to_float(value: object) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise _Reject(f"expected a number, got {quote(value)}", "number", "finite numbers")
    return number


def _to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _Reject(f"expected true or false, got {quote(value)}", "boolean", "true, false")


def _check_range(binding: InputBinding, number: int | float) -> None:
    low, high = binding.min, binding.max
    if (low is not None and number < low) or (high is not None and number > high):
        below = low is not None and number < low
        bound = f"below the minimum {low}" if below else f"above the maximum {high}"
        low_text = "" if low is None else str(low)
        high_text = "" if high is None else str(high)
        raise _Reject(f"{quote(number)} is {bound}", {"min": low, "max": high}, f"{low_text}..{high_text}")


def _to_choice(binding: InputBinding, value: object) -> object:
    if binding.choices:
        if value in binding.choices and not isinstance(value, bool):
            return binding.choices[binding.choices.index(value)]  # the engine's own spelling (1 vs 1.0)
        shown, text = _listing(binding.choices)
        raise _Reject(f"{quote(value)} is not one of the {len(binding.choices)} choices", shown, text)
    if isinstance(value, str | int) and not isinstance(value, bool):
        return value
    raise _Reject(f"expected a choice (text), got {quote(value)}", "text", "text")


def _to_file_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Reject(f"expected a file name from an upload, got {quote(value)}", "file name", "file names")
    parts = value.replace("\\", "/").split("/")
    if value.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", value):
        raise _Reject(
            f"{quote(value)} is not a plain upload name; use the name returned by the upload",
            "file name",
            "names relative to the engine's input folder",
        )
    return value


def draw_seed(binding: InputBinding, rng: random.Random) -> int:
    """A fresh seed within the binding's range, capped at SEED_DRAW_MAX (see module docs)."""
    low = int(binding.min) if binding.min is not None else 0
    high = int(binding.max) if binding.max is not None else SEED_MAX
    high = max(low, min(high, SEED_DRAW_MAX))
    return rng.randint(low, high)


def _coerce_value(binding: InputBinding, value: object, rng: random.Random) -> object:
    """The value to put into the prompt, or :class:`_Reject` with the reason."""
    if binding.type in ("int", "seed"):
        number = _to_int(value)
        if binding.type == "seed" and number == -1:
            return draw_seed(binding, rng)
        _check_range(binding, number)
        return number
    if binding.type == "float":
        number_f = _to_float(value)
        _check_range(binding, number_f)
        return number_f
    if binding.type == "bool":
        return _to_bool(value)
    if binding.type == "text":
        if not isinstance(value, str):
            raise _Reject(f"expected text, got {quote(value)}", "text", "text")
        if binding.max_length is not None and len(value) > binding.max_length:
            raise _Reject(f"the text is {len(value)} characters long, over the limit of {binding.max_length}",
                          {"max_length": binding.max_length}, f"text of at most {binding.max_length} characters")
        return value
    if binding.type == "choice":
        return _to_choice(binding, value)
    return _to_file_name(value)


class BindingError(ValueError):
    """The bindings do not fit the workflow (a publishing mistake, not a user's value)."""


def check_bindings(workflow: Workflow, bindings: Iterable[InputBinding]) -> None:
    """Raise :class:`BindingError` for duplicate names, missing nodes/inputs, or linked inputs."""
    seen: set[str] = set()
    problems: list[str] = []
    for b in bindings:
        if b.name in seen:
            problems.append(f"input name '{b.name}' is used twice")
        seen.add(b.name)
        if b.node not in workflow:
            problems.append(f"'{b.name}' targets node '{b.node}', which is not in the workflow")
        elif is_link(workflow.inputs(b.node).get(b.input)):
            problems.append(
                f"'{b.name}' targets input '{b.input}' of node '{b.node}', which is a link, not a value"
            )
    if problems:
        raise BindingError("; ".join(problems))


def _resolve(
    binding: InputBinding, given: object, current: object, rng: random.Random
) -> tuple[bool, object]:
    """(whether to write, value) for one binding; raises _Reject."""
    if given is not None:
        return True, _coerce_value(binding, given, rng)
    if binding.type == "seed" and binding.randomize:
        return True, draw_seed(binding, rng)
    if binding.default is not None:
        return True, binding.default
    if binding.required:
        raise _Reject("a value is required")
    return False, current


def apply_values(
    workflow: Workflow,
    bindings: Iterable[InputBinding],
    values: Mapping[str, object],
    *,
    rng: random.Random | None = None,
) -> AppliedPrompt:
    """A new prompt with ``values`` applied; the workflow itself is never changed."""
    bindings = list(bindings)
    check_bindings(workflow, bindings)
    rng = rng if rng is not None else random.SystemRandom()
    prompt = copy.deepcopy(workflow.nodes)
    applied: dict[str, object] = {}
    errors: list[InputValueError] = []

    known = {b.name for b in bindings}
    for name in values:
        if name not in known:
            shown, text = _listing(sorted(known))
            text = text or "(none)"
            errors.append(InputValueError(name, "unknown input", allowed=shown, allowed_text=text))

    for b in bindings:
        node_inputs = prompt[b.node]["inputs"]
        try:
            write, value = _resolve(b, values.get(b.name), node_inputs.get(b.input), rng)
        except _Reject as exc:
            errors.append(
                InputValueError(
                    b.name,
                    exc.message,
                    node=b.node,
                    node_input=b.input,
                    allowed=exc.allowed,
                    allowed_text=exc.allowed_text,
                )
            )
            continue
        if write:
            node_inputs[b.input] = copy.deepcopy(value)
        applied[b.name] = value
    if errors:
        raise InputValuesError(errors)
    return AppliedPrompt(prompt=prompt, values=applied)


def bindings_from_candidates(candidates: Iterable[CandidateInput]) -> list[InputBinding]:
    """Bindings for the chosen candidates, named from their labels (``_2``, ``_3`` on clashes)."""
    bindings: list[InputBinding] = []
    used: set[str] = set()
    for c in candidates:
        base = slugify(c.label) or f"{c.node_id}.{c.input_name}"
        name, n = base, 2
        while name in used:
            name, n = f"{base}_{n}", n + 1
        used.add(name)
        bindings.append(
            InputBinding(
                node=c.node_id,
                input=c.input_name,
                type=c.type,
                name=name,
                label=c.label,
                default=c.default,
                min=c.min,
                max=c.max,
                step=c.step,
                choices=c.choices,
                randomize=c.randomize,
            )
        )
    return bindings
