"""The plan's plot: cost per minute against p95 latency for every swept setting, one colour per GPU, the cheapest
setting at each latency joined (the frontier), the pick starred. A matplotlib Figure (no pyplot state: safe in
worker threads)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtimes.planner.sweep import Point

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLOURS = ("#2563eb", "#059669", "#7c3aed", "#d97706", "#0891b2", "#db2777", "#65a30d", "#475569")


def frontier(points: list[Point]) -> list[Point]:
    """The settings no other beats on both cost and p95, by p95."""
    best: list[Point] = []
    for point in sorted(points, key=lambda p: (p.p95_s, p.cost_per_min)):
        if not best or point.cost_per_min < best[-1].cost_per_min:
            best.append(point)
    return best


def cost_latency_figure(points: list[Point], pick: Point | None, target_p95_s: float | None = None,
                        budget_per_min: float | None = None) -> Figure:
    from matplotlib.figure import Figure  # on the first plan, not at every server start (~0.5 s of import)

    figure = Figure(figsize=(9, 4.2), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    for i, gpu in enumerate(dict.fromkeys(p.gpu for p in points)):
        mine = [p for p in points if p.gpu == gpu]
        axes.scatter([p.p95_s for p in mine], [p.cost_per_min for p in mine], s=[24 + 6 * p.max_inputs for p in mine],
                     color=COLOURS[i % len(COLOURS)], alpha=0.55, label=f"{gpu} (size: inputs/container)")
    edge = frontier(points)
    axes.plot([p.p95_s for p in edge], [p.cost_per_min for p in edge], color="#94a3b8", linewidth=1, zorder=0,
              label="cheapest at each p95")
    if target_p95_s:
        axes.axvline(target_p95_s, color="#dc2626", linestyle=":", linewidth=1, label=f"target p95 {target_p95_s:g} s")
    if budget_per_min:
        axes.axhline(budget_per_min, color="#dc2626", linestyle="--", linewidth=1,
                     label=f"budget ${budget_per_min:g}/min")
    if pick is not None:
        axes.scatter([pick.p95_s], [pick.cost_per_min], marker="*", s=320, color="#dc2626", edgecolor="black",
                     zorder=5, label="recommended")
        axes.annotate(f"{pick.gpu}, {pick.max_inputs}/container, warm {pick.min_containers}",
                      (pick.p95_s, pick.cost_per_min), textcoords="offset points", xytext=(10, 10), fontsize=9)
    axes.set_xlabel("p95 latency (s)")
    axes.set_ylabel("cost ($/min)")
    axes.set_title("Cost against p95, each swept setting", fontsize=11)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper right")
    return figure
