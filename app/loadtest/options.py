"""What a load test does: how many simulated users, how fast they arrive, for how long, against which target."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

MAX_USERS = 200  # one machine's Locust process, and a load a local engine queue can take without hours of backlog
MAX_DURATION_S = 3600.0
MAX_SPAWN_RATE = 100.0
TARGETS = ("local", "modal")


@dataclass(frozen=True)
class LoadTestOptions:
    """Each bound is checked here, with the command-line flag that sets it named in the message."""

    slug: str
    users: int  # 1..MAX_USERS simulated users at once
    spawn_rate: float  # users started per second
    duration_s: float  # 1..MAX_DURATION_S
    think_min_s: float = 1.0  # a user waits uniform(think_min_s, think_max_s) between a result and its next run
    think_max_s: float = 5.0
    target: str = "local"  # "local": this server; "modal": the app's own live Modal deployment
    max_runs: int | None = None  # stop after this many submitted runs

    def __post_init__(self) -> None:
        if not isinstance(self.slug, str) or not self.slug.strip():
            raise ValueError("give the app's slug (as `GET /api/apps` lists it)")
        _integer("--users", self.users, 1, MAX_USERS)
        _number("--spawn-rate", self.spawn_rate, 0.0, MAX_SPAWN_RATE, low_open=True)
        _number("--duration", self.duration_s, 1.0, MAX_DURATION_S)
        _number("--think", self.think_min_s, 0.0, 3600.0)
        _number("--think", self.think_max_s, 0.0, 3600.0)
        if self.think_min_s > self.think_max_s:
            raise ValueError(f"--think takes MIN-MAX seconds with MIN <= MAX (got {self.think_min_s:g}-"
                             f"{self.think_max_s:g})")
        if self.target not in TARGETS:
            raise ValueError(f"--target must be one of {', '.join(TARGETS)} (got '{str(self.target)[:40]}')")
        if self.max_runs is not None:
            _integer("--max-runs", self.max_runs, 1, 1_000_000)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadTestOptions:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


def _integer(flag: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{flag} takes a whole number from {low} to {high} (got {str(value)[:40]!r})")
    if not low <= value <= high:
        raise ValueError(f"{flag} must be from {low} to {high} (got {value})")


def _number(flag: str, value: Any, low: float, high: float, *, low_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{flag} takes a number (got {str(value)[:40]!r})")
    if (value <= low if low_open else value < low) or value > high:
        bound = f"more than {low:g}" if low_open else f"from {low:g}"
        raise ValueError(f"{flag} must be {bound} up to {high:g} (got {value:g})")
