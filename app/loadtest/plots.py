"""The report's PNG plots (matplotlib's Agg canvas through Figure: no pyplot state, safe in a server's threads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def write_plots(report: dict[str, Any], out_dir: Path, totals_s: list[float]) -> list[str]:
    """Writes the plots into out_dir; returns their file names."""
    s = report["series"]
    title = f"{report['slug']} v{report['version']} ({report['target']})"
    written = []

    fig, ax = _figure(f"Latency, {title}")
    ax.plot(s["t_s"], _nan(s["p50_s"]), label="p50")
    ax.plot(s["t_s"], _nan(s["p95_s"]), label="p95")
    ax.set(xlabel="seconds since start", ylabel="run total time (s), last 10 s")
    _from_zero(ax, s["t_s"])
    ax.legend(loc="best")
    written.append(_save(fig, out_dir / "latency.png"))

    fig, ax = _figure(f"Users and throughput, {title}")
    ax.step(s["t_s"], s["users"], where="post", color="tab:blue", label="users")
    ax.set(xlabel="seconds since start", ylabel="users")
    _from_zero(ax, s["t_s"], whole=True)
    ax.set_ylim(0, max(s["users"] + [1]) * 1.2)
    rate = ax.twinx()
    rate.plot(s["t_s"], s["rps"], color="tab:orange", label="runs/s")
    rate.set_ylabel("runs ended per second, last 5 s")
    rate.set_ylim(bottom=0)
    fig.legend(loc="lower right", bbox_to_anchor=(0.9, 0.15))
    written.append(_save(fig, out_dir / "throughput.png"))

    fig, ax = _figure(f"Queue length, {title}")
    if any(q is not None for q in s["queue_length"]):
        ax.step(s["t_s"], _nan(s["queue_length"]), where="post")
    else:
        ax.text(0.5, 0.5, "not measured (a deployment does not expose its queue)", ha="center",
                transform=ax.transAxes)
    ax.set(xlabel="seconds since start", ylabel="runs queued")
    _from_zero(ax, s["t_s"], whole=True)
    written.append(_save(fig, out_dir / "queue.png"))

    fig, ax = _figure(f"Total time per run, {title}")
    ax.hist(totals_s or [0.0], bins=min(30, max(5, len(totals_s) // 3)))
    ax.set(xlabel="run total time (s)", ylabel="runs")
    written.append(_save(fig, out_dir / "total_time.png"))
    return written


def _figure(title: str) -> tuple[Figure, Any]:
    fig = Figure(figsize=(8, 4), dpi=100, layout="tight")
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig, ax


def _from_zero(ax: Any, t_s: list[int], *, whole: bool = False) -> None:
    ax.set_xlim(0, max([*t_s, 1]))
    ax.set_ylim(bottom=0)
    if whole:  # users and queued runs are counts
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _save(fig: Figure, path: Path) -> str:
    fig.savefig(path, format="png")
    return path.name


def _nan(values: list[float | None]) -> list[float]:
    return [float("nan") if v is None else v for v in values]
