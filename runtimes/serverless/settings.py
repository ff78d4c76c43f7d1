"""What the serverless targets' deploy settings share: the error that names every refused setting at once, how a
setting is shown (label, help, cost), and the coercions of values from a form, JSON or the command line."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

HOURS_PER_MONTH = 730


class DeploySettingsError(ValueError):
    """Settings the provider would refuse or misread; `problems` names each setting, the value and what is allowed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("Invalid deploy settings:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class FieldInfo:
    """How a setting is shown: label, one-line help, what it costs."""

    label: str
    help: str
    cost: str


def as_int(value: Any) -> int | None:
    """A whole number from an int, a whole float or a digit string; None otherwise (a bool is not a number)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    return None


def as_bool(value: Any) -> bool | None:
    """True or false from a bool or the usual words (true/1/yes/on, false/0/no/off); None otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return None
