"""The plan's plot (app/studio/plan_plot.py): the frontier of cost against p95, and the pick drawn apart."""

from __future__ import annotations

from app.studio.plan_plot import cost_latency_figure, frontier
from runtimes.planner.sweep import Point


def point(p95: float, cost: float, gpu: str = "A10", inputs: int = 1) -> Point:
    return Point(gpu=gpu, gpu_price_per_hour=1.1, max_inputs=inputs, min_containers=0, idle_s=60, max_containers=10,
                 p50_s=p95 / 2, p95_s=p95, cost_per_min=cost, peak_containers=1)


def test_the_frontier_keeps_only_settings_no_other_beats_on_both() -> None:
    fast_dear, middle, dominated, slow_cheap = point(4, 0.2), point(8, 0.1), point(9, 0.15), point(30, 0.02)
    assert frontier([slow_cheap, dominated, middle, fast_dear]) == [fast_dear, middle, slow_cheap]


def test_the_figure_stars_the_pick_and_draws_the_goal() -> None:
    points = [point(4, 0.2), point(8, 0.1, gpu="T4"), point(30, 0.02, inputs=8)]
    axes = cost_latency_figure(points, points[1], target_p95_s=10).axes[0]
    labels = axes.get_legend_handles_labels()[1]
    assert labels == ["A10 (size: inputs/container)", "T4 (size: inputs/container)", "cheapest at each p95",
                      "target p95 10 s", "recommended"]
    assert [t.get_text() for t in axes.texts] == ["T4, 1/container, warm 0"]
    assert "recommended" not in cost_latency_figure(points, None).axes[0].get_legend_handles_labels()[1]
