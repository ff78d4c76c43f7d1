"""Sweep Modal settings through the autoscaler simulation and recommend one: the cheapest that meets a p95 target,
or the fastest within a budget.

Only the exec times given are used: a GPU enters the sweep when its exec time is known (measured or typed), never
guessed from another GPU's. The grid and the simulated time are bounded, so a sweep answers in about a second."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from runtimes.planner.autoscaler import Deployment, Traffic, simulate

MAX_POINTS = 400  # settings simulated per sweep
MAX_DURATION_S = 900.0
MAX_INPUTS_LIMIT = 32
MIN_CONTAINERS_LIMIT = 10


@dataclass(frozen=True)
class Workload:
    """The app's times and its traffic. `exec_s_by_gpu`: the engine's execution time on each GPU to compare."""

    exec_s_by_gpu: Mapping[str, float]
    overhead_s: float
    cold_start_s: float
    traffic: Traffic


@dataclass(frozen=True)
class Grid:
    """The settings to try, each a value list (bounded: see MAX_POINTS)."""

    max_inputs: Sequence[int] = (1, 2, 4, 8)
    min_containers: Sequence[int] = (0, 1, 2)
    idle_s: Sequence[float] = (60.0, 300.0)
    max_containers: int = 100

    def size(self, gpus: int) -> int:
        return gpus * len(self.max_inputs) * len(self.min_containers) * len(self.idle_s)


@dataclass(frozen=True)
class Point:
    """One setting and what the simulation found for it."""

    gpu: str
    gpu_price_per_hour: float
    max_inputs: int
    min_containers: int
    idle_s: float
    max_containers: int
    p50_s: float
    p95_s: float
    cost_per_min: float
    peak_containers: int

    def label(self) -> str:
        return (f"{self.gpu}, {self.max_inputs} input(s)/container, warm pool {self.min_containers}, "
                f"idle {self.idle_s:g} s")


@dataclass(frozen=True)
class Recommendation:
    pick: Point | None  # None: no setting meets the goal (the reason says why and what to change)
    reason: str


def sweep(workload: Workload, prices: Mapping[str, float], grid: Grid = Grid(),
          duration_s: float = 300.0, seed: int = 0) -> list[Point]:
    """Simulate every setting of the grid for each GPU of the workload (priced from `prices`)."""
    if not workload.exec_s_by_gpu:
        raise ValueError("give the exec time of at least one GPU")
    unknown = [gpu for gpu in workload.exec_s_by_gpu if gpu not in prices]
    if unknown:
        raise ValueError(f"no price for GPU {', '.join(unknown)}: pick from {', '.join(prices)}")
    if not 0 < duration_s <= MAX_DURATION_S:
        raise ValueError(f"the simulated duration must be 0-{MAX_DURATION_S:g} s (got {duration_s:g})")
    _check_grid(grid)
    size = grid.size(len(workload.exec_s_by_gpu))
    if size > MAX_POINTS:
        raise ValueError(f"{size} settings to simulate, at most {MAX_POINTS}: compare fewer GPUs or values")
    points = []
    for (gpu, exec_s), inputs, warm, idle in itertools.product(workload.exec_s_by_gpu.items(), grid.max_inputs,
                                                               grid.min_containers, grid.idle_s):
        deployment = Deployment(exec_s=exec_s, overhead_s=workload.overhead_s, cold_start_s=workload.cold_start_s,
                                gpu_price_per_hour=prices[gpu], max_inputs=inputs,
                                max_containers=grid.max_containers, min_containers=warm, idle_s=idle)
        plan = simulate(deployment, workload.traffic, duration_s=duration_s, seed=seed)
        points.append(Point(gpu=gpu, gpu_price_per_hour=prices[gpu], max_inputs=inputs, min_containers=warm,
                            idle_s=idle, max_containers=grid.max_containers, p50_s=plan.p50_s, p95_s=plan.p95_s,
                            cost_per_min=plan.cost_per_min, peak_containers=plan.peak_containers))
    return points


def _check_grid(grid: Grid) -> None:
    if not grid.max_inputs or not all(1 <= n <= MAX_INPUTS_LIMIT for n in grid.max_inputs):
        raise ValueError(f"inputs per container must be 1-{MAX_INPUTS_LIMIT}")
    if not grid.min_containers or not all(0 <= n <= min(MIN_CONTAINERS_LIMIT, grid.max_containers)
                                          for n in grid.min_containers):
        raise ValueError(f"the warm pool must be 0-{MIN_CONTAINERS_LIMIT} containers (and within max containers)")
    if not grid.idle_s or not all(n >= 0 for n in grid.idle_s):
        raise ValueError("idle windows must be 0 or more seconds")
    if grid.max_containers < 1:
        raise ValueError("max containers must be 1 or more")


def recommend(points: Sequence[Point], target_p95_s: float | None = None,
              budget_per_min: float | None = None) -> Recommendation:
    """The cheapest setting whose p95 meets the target (ties: the faster), or the fastest within the budget (ties:
    the cheaper); with both, the cheapest that meets both."""
    if target_p95_s is None and budget_per_min is None:
        raise ValueError("give a target p95 (seconds) or a budget ($/min), or both")
    if target_p95_s is not None and target_p95_s <= 0:
        raise ValueError("the target p95 must be more than 0 seconds")
    if budget_per_min is not None and budget_per_min < 0:
        raise ValueError("the budget must be 0 or more $/min")
    if not points:
        return Recommendation(None, "nothing was simulated")
    fast = [p for p in points if target_p95_s is None or p.p95_s <= target_p95_s]
    both = [p for p in fast if budget_per_min is None or p.cost_per_min <= budget_per_min]
    if both:
        if target_p95_s is not None:
            pick = min(both, key=lambda p: (p.cost_per_min, p.p95_s))
            goal = f"the cheapest with p95 ≤ {target_p95_s:g} s"
            goal += f" within ${budget_per_min:g}/min" if budget_per_min is not None else ""
        else:
            pick = min(both, key=lambda p: (p.p95_s, p.cost_per_min))
            goal = f"the fastest within ${budget_per_min:g}/min"
        return Recommendation(pick, f"{goal}: {pick.label()} (p95 {pick.p95_s:.1f} s, ${pick.cost_per_min:.4f}/min)")
    fastest = min(points, key=lambda p: (p.p95_s, p.cost_per_min))
    cheapest = min(points, key=lambda p: (p.cost_per_min, p.p95_s))
    if not fast:
        return Recommendation(None, f"no setting reaches p95 ≤ {target_p95_s:g} s: the fastest is {fastest.label()} "
                                    f"at {fastest.p95_s:.1f} s. Raise the target, compare a faster GPU, or allow "
                                    "more containers.")
    cheapest_fast = min(fast, key=lambda p: (p.cost_per_min, p.p95_s))
    if target_p95_s is None or cheapest_fast is cheapest:
        return Recommendation(None, f"no setting costs ≤ ${budget_per_min:g}/min: the cheapest is "
                                    f"{cheapest.label()} at ${cheapest.cost_per_min:.4f}/min. Raise the budget, or "
                                    "compare a cheaper GPU.")
    return Recommendation(None, f"no setting meets p95 ≤ {target_p95_s:g} s within ${budget_per_min:g}/min: the "
                                f"cheapest that meets the p95 is {cheapest_fast.label()} at "
                                f"${cheapest_fast.cost_per_min:.4f}/min. Raise the budget or the target.")
