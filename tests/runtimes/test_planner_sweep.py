"""The planner's sweep over Modal settings and its recommendation (runtimes/planner/sweep.py), on the workload of
Modal's ComfyUI load test (3.5 s on the GPU, 0.9 s around it, 15 s cold start, 10 users thinking 1-5 s)."""

from __future__ import annotations

import pytest

from runtimes.modal.host.settings import GPU_PRICES
from runtimes.planner.autoscaler import Traffic
from runtimes.planner.sweep import Grid, Point, Workload, recommend, sweep

WORKLOAD = Workload(exec_s_by_gpu={"A10": 3.5}, overhead_s=0.9, cold_start_s=15, traffic=Traffic(10, 1, 5))
GRID = Grid(max_inputs=(1, 2, 4, 10), min_containers=(0, 2), idle_s=(60.0,))


@pytest.fixture(scope="module")
def points() -> list[Point]:
    return sweep(WORKLOAD, GPU_PRICES, GRID, duration_s=300)


def test_the_sweep_simulates_every_setting_of_the_grid_with_the_gpus_price(points: list[Point]) -> None:
    assert len(points) == 4 * 2
    assert {(p.max_inputs, p.min_containers) for p in points} == {(n, w) for n in (1, 2, 4, 10) for w in (0, 2)}
    assert all(p.gpu == "A10" and p.gpu_price_per_hour == GPU_PRICES["A10"] for p in points)
    # More inputs per container: fewer containers, cheaper, slower (ComfyUI runs one prompt at a time).
    cold = sorted((p for p in points if p.min_containers == 0), key=lambda p: p.max_inputs)
    assert [p.cost_per_min for p in cold] == sorted((p.cost_per_min for p in cold), reverse=True)
    assert [p.p95_s for p in cold] == sorted(p.p95_s for p in cold)


def test_a_tighter_p95_target_never_gets_a_cheaper_pick(points: list[Point]) -> None:
    targets = sorted({p.p95_s for p in points}, reverse=True)
    picks = [recommend(points, target_p95_s=t).pick for t in targets]
    assert all(pick is not None for pick in picks)
    costs = [pick.cost_per_min for pick in picks if pick]
    assert costs == sorted(costs)  # loosest target first: the cost only rises as the target tightens
    for target, pick in zip(targets, picks, strict=True):
        assert pick is not None and pick.p95_s <= target
        assert pick.cost_per_min == min(p.cost_per_min for p in points if p.p95_s <= target)


def test_a_larger_budget_never_gets_a_slower_pick(points: list[Point]) -> None:
    budgets = sorted({p.cost_per_min for p in points})
    picks = [recommend(points, budget_per_min=b).pick for b in budgets]
    p95s = [pick.p95_s for pick in picks if pick]
    assert len(p95s) == len(budgets) and p95s == sorted(p95s, reverse=True)
    for budget, pick in zip(budgets, picks, strict=True):
        assert pick is not None and pick.cost_per_min <= budget
        assert pick.p95_s == min(p.p95_s for p in points if p.cost_per_min <= budget)


def test_with_both_a_target_and_a_budget_the_pick_meets_both(points: list[Point]) -> None:
    target = sorted(p.p95_s for p in points)[len(points) // 2]
    budget = max(p.cost_per_min for p in points)
    pick = recommend(points, target_p95_s=target, budget_per_min=budget).pick
    assert pick is not None and pick.p95_s <= target and pick.cost_per_min <= budget


def test_an_unreachable_goal_gets_no_pick_and_says_what_is_closest(points: list[Point]) -> None:
    fastest = min(p.p95_s for p in points)
    none = recommend(points, target_p95_s=fastest / 2)
    assert none.pick is None
    assert "no setting reaches p95" in none.reason and f"{fastest:.1f} s" in none.reason
    cheapest = min(p.cost_per_min for p in points)
    broke = recommend(points, budget_per_min=cheapest / 2)
    assert broke.pick is None and "no setting costs" in broke.reason and f"{cheapest:.4f}" in broke.reason


def test_a_faster_gpu_enters_the_sweep_only_with_its_own_exec_time() -> None:
    two = Workload(exec_s_by_gpu={"A10": 3.5, "H100": 1.0}, overhead_s=0.9, cold_start_s=15,
                   traffic=Traffic(10, 1, 5))
    points = sweep(two, GPU_PRICES, Grid(max_inputs=(1,), min_containers=(0,), idle_s=(60.0,)), duration_s=120)
    by_gpu = {p.gpu: p for p in points}
    assert set(by_gpu) == {"A10", "H100"}
    assert by_gpu["H100"].p50_s < by_gpu["A10"].p50_s
    assert recommend(points, target_p95_s=by_gpu["A10"].p95_s / 2).pick == by_gpu["H100"]


@pytest.mark.parametrize(("workload", "grid", "duration", "message"), [
    (Workload({"Z9": 1.0}, 0, 10, Traffic(1, 1, 1)), Grid(), 60, "no price for GPU Z9"),
    (Workload({}, 0, 10, Traffic(1, 1, 1)), Grid(), 60, "at least one GPU"),
    (WORKLOAD, Grid(max_inputs=(0,)), 60, "inputs per container must be"),
    (WORKLOAD, Grid(min_containers=(50,)), 60, "warm pool must be"),
    (WORKLOAD, Grid(), 100_000, "simulated duration must be"),
    (WORKLOAD, Grid(max_inputs=tuple(range(1, 33)), min_containers=tuple(range(11)), idle_s=(1.0, 2.0)), 60,
     "at most 400"),
])
def test_bad_sweeps_are_refused_with_what_to_change(workload: Workload, grid: Grid, duration: float,
                                                    message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sweep(workload, GPU_PRICES, grid, duration_s=duration)


def test_a_recommendation_needs_a_goal(points: list[Point]) -> None:
    with pytest.raises(ValueError, match=r"target p95 .* or a budget"):
        recommend(points)
    with pytest.raises(ValueError, match="more than 0 seconds"):
        recommend(points, target_p95_s=0)
