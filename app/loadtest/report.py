"""The report of a load test, from the locustfile's event log (one line per run and per second) and the queue
lengths sampled meanwhile: report.json's dict and summary.md's text."""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PERCENTILE_WINDOW_S = 10.0  # a series point's latency percentiles: the runs that ended in the last 10 s
RATE_WINDOW_S = 5.0  # its throughput: runs ended per second over the last 5 s
UNFINISHED = "unfinished"  # a run still going when the test stopped (cancelled by the runner)


@dataclass
class EventLog:
    """What the locustfile wrote so far; `read` takes the lines added since the last call."""

    path: Path
    ends: list[dict[str, Any]] = field(default_factory=list)
    submitted: dict[str, float] = field(default_factory=dict)
    ticks: list[tuple[float, int]] = field(default_factory=list)
    _offset: int = 0

    def read(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line being written is read next time
        self._offset += len(complete)
        for line in complete.decode(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "end":
                self.ends.append(event)
            elif event.get("event") == "submitted" and event.get("run_id"):
                self.submitted[str(event["run_id"])] = float(event["t"])
            elif event.get("event") == "tick":
                self.ticks.append((float(event["t"]), int(event.get("users") or 0)))

    def unfinished(self) -> list[str]:
        ended = {str(e.get("run_id")) for e in self.ends}
        return [run_id for run_id in self.submitted if run_id not in ended]

    def progress(self, started: float, now: float) -> dict[str, Any]:
        totals = [float(e["total_s"]) for e in self.ends if e.get("ok")]
        return {"elapsed_s": round(now - started, 1), "users": self.ticks[-1][1] if self.ticks else 0,
                "requests": len(self.ends), "failures": sum(1 for e in self.ends if not e.get("ok")),
                "p50_s": _round(percentile(totals, 50))}


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def distribution(values: Iterable[float | None]) -> dict[str, float | None]:
    measured = [float(v) for v in values if v is not None]
    return {"p50": _round(percentile(measured, 50)), "p95": _round(percentile(measured, 95)),
            "p99": _round(percentile(measured, 99)),
            "mean": _round(sum(measured) / len(measured)) if measured else None,
            "max": _round(max(measured)) if measured else None}


def series(log: EventLog, queue: list[tuple[float, int | None]], started: float, finished: float) -> dict[str, list]:
    """One point a second from the start: users, latency percentiles and throughput over trailing windows, and the
    queue length sampled nearest before (None where it was not measured). Bisected: an hour of a busy test is
    3,600 points over tens of thousands of runs."""
    seconds = max(1, math.ceil(finished - started))
    ends = sorted((float(e["t"]) - started, float(e["total_s"])) for e in log.ends if e.get("ok"))
    end_times = [at for at, _ in ends]
    ticks = sorted((t - started, users) for t, users in log.ticks)
    samples = sorted((t - started, length) for t, length in queue)
    out: dict[str, list] = {"t_s": [], "users": [], "p50_s": [], "p95_s": [], "rps": [], "queue_length": []}
    for t in range(1, seconds + 1):
        window = [total for _, total in ends[bisect_right(end_times, t - PERCENTILE_WINDOW_S):
                                             bisect_right(end_times, t)]]
        rate_from = max(0.0, t - RATE_WINDOW_S)
        ended = bisect_right(end_times, t) - bisect_right(end_times, rate_from)
        out["t_s"].append(t)
        out["users"].append(_last_before(ticks, t, 0))
        out["p50_s"].append(_round(percentile(window, 50)))
        out["p95_s"].append(_round(percentile(window, 95)))
        out["rps"].append(round(ended / (t - rate_from), 3))
        out["queue_length"].append(_last_before(samples, t, None))
    return out


def build_report(*, report_id: str, options: dict[str, Any], target: str, url: str, version: int | None,
                 started_at: str, finished_at: str, log: EventLog, queue: list[tuple[float, int | None]],
                 started: float, finished: float, cut_off: int) -> dict[str, Any]:
    """`cut_off`: runs still going when the test ended (counted as failures of kind 'unfinished')."""
    successes = [e for e in log.ends if e.get("ok")]
    failures: dict[str, int] = {}
    for event in log.ends:
        if not event.get("ok"):
            kind = str(event.get("kind") or "unknown")
            failures[kind] = failures.get(kind, 0) + 1
    if cut_off:
        failures[UNFINISHED] = cut_off
    elapsed_min = max(finished - started, 1e-9) / 60
    records = [e for e in log.ends if e.get("status")]  # runs with a record of their own (not refused at the door)
    return {
        "id": report_id, "slug": options["slug"], "version": version, "target": target, "url": url,
        "started_at": started_at, "finished_at": finished_at, "options": options,
        "requests": len(log.ends) + cut_off, "successes": len(successes), "failures": failures,
        "total_s": distribution(e["total_s"] for e in successes),
        "queue_wait_s": distribution(_seconds(e.get("queue_ms")) for e in records),
        "execution_s": distribution(_seconds(e.get("exec_ms")) for e in records),
        "runs_per_min": round(len(successes) / elapsed_min, 3),
        "series": series(log, queue, started, finished),
        "plots": [], "locustfile": "locustfile.py", "summary": "summary.md",
    }


def summary_markdown(report: dict[str, Any]) -> str:
    options = report["options"]
    failures = ", ".join(f"{kind} {count}" for kind, count in sorted(report["failures"].items())) or "none"
    lines = [
        f"# Load test of `{report['slug']}` (version {report['version']}, {report['target']})",
        "",
        f"- Target: {report['url']}",
        f"- From {report['started_at']} to {report['finished_at']}",
        f"- {options['users']} users (spawn rate {options['spawn_rate']:g}/s), {options['duration_s']:g} s, think "
        f"{options['think_min_s']:g}-{options['think_max_s']:g} s"
        + (f", at most {options['max_runs']} runs" if options.get("max_runs") else ""),
        f"- Runs: {report['requests']} submitted, {report['successes']} succeeded; failures: {failures}",
        f"- Throughput: {report['runs_per_min']:g} runs per minute",
        "",
        "| seconds | p50 | p95 | p99 | mean | max |",
        "|---|---|---|---|---|---|",
    ]
    for label, key in (("total (as a user waits)", "total_s"), ("queue wait (run records)", "queue_wait_s"),
                       ("execution (run records)", "execution_s")):
        d = report[key]
        lines.append(f"| {label} | " + " | ".join(_shown(d[k]) for k in ("p50", "p95", "p99", "mean", "max")) + " |")
    if report["plots"]:
        lines += ["", "Plots: " + ", ".join(f"[{name}]({name})" for name in report["plots"])]
    lines += ["", f"Locustfile: [{report['locustfile']}]({report['locustfile']}) (run it yourself: see its top)."]
    return "\n".join(lines) + "\n"


def _last_before(points: list[tuple[float, Any]], t: float, missing: Any) -> Any:
    """The value of the last point at or before t (points sorted by time)."""
    index = bisect_right(points, t, key=lambda point: point[0])
    return points[index - 1][1] if index else missing


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else float(ms) / 1000


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
