"""The Deploy tab's plan, checked: its fields (as the studio hands them over: numbers, or None when empty, and text)
become the sweep's workload and grid, or a PlanFormError naming each field that is wrong and how to fix it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from runtimes.modal.host.settings import SCALEDOWN_RANGE
from runtimes.planner.autoscaler import Traffic, parse_think
from runtimes.planner.sweep import MAX_INPUTS_LIMIT, MIN_CONTAINERS_LIMIT, Grid, Workload

MAX_USERS = 500  # the UI's sweep stays around a second


class PlanFormError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class PlanForm:
    gpu: str | None  # the Deploy form's GPU: the exec time is this GPU's
    exec_s: float | None
    other_gpus: str  # "H100=1.2, L4=5": more GPUs to compare, each with its own exec time
    overhead_s: float | None
    cold_start_s: float | None
    users: float | None
    think: str  # "MIN-MAX" seconds
    max_inputs_up_to: float | None
    warm_pool_up_to: float | None
    idle_windows: str  # "60, 300" seconds
    max_containers: float | None  # the Deploy form's (None: no cap, planned as 100)
    target_p95_s: float | None
    budget_per_min: float | None


def parse(form: PlanForm, prices: Mapping[str, float]) -> tuple[Workload, Grid]:
    problems: list[str] = []

    def number(value: float | None, label: str, low: float, high: float, default: float | None = None) -> float:
        if value is None:
            if default is not None:
                return default
            problems.append(f"{label}: give a number ({low:g}-{high:g})")
            return low
        if not low <= value <= high:
            problems.append(f"{label}: {value:g} is out of range, give {low:g}-{high:g}")
            return low
        return float(value)

    exec_by_gpu: dict[str, float] = {}
    if not form.gpu:
        problems.append("GPU: choose one in the Deploy settings above")
    elif form.exec_s is None:
        problems.append("Exec time: this app has no run history to measure; type the seconds one run takes on the "
                        "engine")
    else:
        exec_by_gpu[form.gpu] = number(form.exec_s, "Exec time (s)", 0.0001, 3600)
    for part in filter(None, (p.strip() for p in form.other_gpus.split(","))):
        name, sep, seconds = part.partition("=")
        gpu = next((known for known in prices if known.upper() == name.strip().upper()), None)
        try:
            value = float(seconds) if sep else None
        except ValueError:
            value = None
        if gpu is None or value is None or value <= 0:
            problems.append(f"Other GPUs: '{part[:40]}' is not GPU=SECONDS with a GPU of {', '.join(prices)} "
                            "(e.g. H100=1.2)")
        else:
            exec_by_gpu[gpu] = value
    try:
        think = parse_think(form.think)
        if not 0 <= think[0] <= think[1]:
            raise ValueError
    except ValueError:
        problems.append(f"Think time: '{form.think[:40]}' is not MIN-MAX seconds with MIN <= MAX (e.g. 1-5)")
        think = (0.0, 0.0)
    try:
        idle = tuple(float(p) for p in form.idle_windows.replace(" ", "").split(",") if p)
        if not idle or not all(SCALEDOWN_RANGE[0] <= s <= SCALEDOWN_RANGE[1] for s in idle):
            raise ValueError
    except ValueError:
        problems.append(f"Idle windows: '{form.idle_windows[:40]}' is not seconds ({SCALEDOWN_RANGE[0]}-"
                        f"{SCALEDOWN_RANGE[1]}) separated by commas (e.g. 60, 300)")
        idle = (60.0,)
    max_containers = int(number(form.max_containers, "Max containers", 1, 1000, default=100))
    inputs = int(number(form.max_inputs_up_to, "Inputs per container, up to", 1, MAX_INPUTS_LIMIT))
    warm = int(number(form.warm_pool_up_to, "Warm pool, up to", 0, min(MIN_CONTAINERS_LIMIT, max_containers)))
    workload = Workload(exec_s_by_gpu=exec_by_gpu,
                        overhead_s=number(form.overhead_s, "Overhead (s)", 0, 3600, default=0.0),
                        cold_start_s=number(form.cold_start_s, "Cold start (s)", 0, 3600),
                        traffic=Traffic(users=int(number(form.users, "Users", 1, MAX_USERS)), think_min_s=think[0],
                                        think_max_s=think[1]))
    if form.target_p95_s is None and form.budget_per_min is None:
        problems.append("Goal: give a target p95 (s), a budget ($/min), or both")
    if form.target_p95_s is not None and form.target_p95_s <= 0:
        problems.append("Target p95: give more than 0 seconds")
    if form.budget_per_min is not None and form.budget_per_min < 0:
        problems.append("Budget: give 0 or more $/min")
    if problems:
        raise PlanFormError(problems)
    return workload, Grid(max_inputs=_doublings(inputs), min_containers=tuple(range(warm + 1)), idle_s=idle,
                          max_containers=max_containers)


def _doublings(up_to: int) -> tuple[int, ...]:
    """1, 2, 4, ... up to `up_to` (itself included): the knee of cost against latency, in few points."""
    values, n = [], 1
    while n < up_to:
        values.append(n)
        n *= 2
    return (*values, up_to)
