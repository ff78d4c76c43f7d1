"""Checks a literal node input against its schema the way the engine's ``validate_inputs`` does, no stricter.

The engine converts INT with ``int(value)`` and FLOAT with ``float(value)`` (so ``5.0``, ``"5"`` and ``True``
pass and ``"abc"`` fails), then compares with min/max; STRING and BOOLEAN accept anything (``str()``,
``bool()``). It refuses a value outside a combo's choices only for the legacy list form. Combos listing files
(models, uploads) depend on what the engine holds, so their values are checked for type only: a missing model
must stay publishable (model references report it).
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from .models import FOLDER_BY_INPUT
from .node_schema import InputSpec
from .quoting import quote

LiteralProblemKind = Literal["invalid_value", "value_out_of_range", "value_not_in_list"]

SHOWN_CHARS = 40  # a value is quoted up to this many characters: never echo a huge value back
MAX_LISTED = 20  # the engine also stops listing choices after 20
_FILE_NAME = re.compile(r"\.[A-Za-z0-9]{1,8}$")


def short(value: object) -> str:
    """The value as JSON, cut to a short prefix."""
    return quote(value, SHOWN_CHARS)


def _range_text(spec: InputSpec) -> str:
    if spec.min is not None and spec.max is not None:
        return f"between {spec.min} and {spec.max}"
    if spec.min is not None:
        return f"of at least {spec.min}"
    if spec.max is not None:
        return f"of at most {spec.max}"
    return ""


def _convert(spec: InputSpec, value: Any) -> Any:
    """The engine's own conversion; raises what it would raise."""
    if spec.type == "INT":
        return int(value)
    if spec.type == "FLOAT":
        return float(value)
    return value


def _is_file_list(spec: InputSpec, value: Any) -> bool:
    if spec.upload is not None or spec.image_upload or spec.name in FOLDER_BY_INPUT or not spec.choices:
        return True
    if "image_folder" in spec.options or spec.options.get("remote"):
        return True
    names = [c for c in (*spec.choices, value) if isinstance(c, str)]
    return any(_FILE_NAME.search(n) for n in names)


def _check_combo(spec: InputSpec, value: Any) -> tuple[LiteralProblemKind, str] | None:
    if not isinstance(value, str | int | float):  # null or an object: no choice is written that way
        return "invalid_value", f"input '{spec.name}' holds {short(value)}, which is not a choice; give one"
    if not spec.listed_choices or _is_file_list(spec, value) or value in spec.choices:
        return None
    listed = ", ".join(short(c) for c in spec.choices[:MAX_LISTED])
    more = f" ... and {len(spec.choices) - MAX_LISTED} more" if len(spec.choices) > MAX_LISTED else ""
    return "value_not_in_list", (f"input '{spec.name}' holds {short(value)}, which is not one of its choices: "
                                 f"{listed}{more}")


def check_literal(spec: InputSpec, value: Any) -> tuple[LiteralProblemKind, str] | None:
    """What the engine would refuse about ``value`` in ``spec``, or None when it would accept it."""
    if isinstance(value, dict) and "__value__" in value:
        value = value["__value__"]  # the engine unwraps list-valued widgets written this way
    if spec.type == "COMBO":
        return _check_combo(spec, value)
    if spec.type not in ("INT", "FLOAT"):
        return None  # STRING and BOOLEAN: the engine converts anything
    kind = "a whole number (INT)" if spec.type == "INT" else "a number (FLOAT)"
    try:
        number = _convert(spec, value)
    except (TypeError, ValueError, OverflowError):
        wanted = " ".join(filter(None, ("give a number", _range_text(spec))))
        return "invalid_value", f"input '{spec.name}' holds {short(value)}, which is not {kind}; {wanted}"
    if (spec.min is not None and number < spec.min) or (spec.max is not None and number > spec.max):
        return "value_out_of_range", (f"input '{spec.name}' is {short(number)}, out of range: give a value "
                                      f"{_range_text(spec)}")
    return None


def is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
