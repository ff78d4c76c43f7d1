"""How the Load tests tab shows a load test: its live progress line, a report's numbers, the list of reports and
two reports side by side. Pure functions of report.json's dict (app/loadtest/report.py writes it)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from app.loadtest.reports import Listed

LIST_COLUMNS = ["Id", "App", "Target", "Started", "Users", "Duration s", "Requests", "Failures", "p50 s", "p95 s",
                "Runs/min", "Note"]
# The options' checks name the command line's flags; the tab names its own fields.
FIELDS = {"--users": "Users", "--spawn-rate": "Spawn rate", "--duration": "Duration (s)", "--think": "Think min/max",
          "--target ": "Target: ", "MIN-MAX": "min and max"}
TIMES = (("Total", "total_s"), ("Queue wait", "queue_wait_s"), ("Execution", "execution_s"))
STATS = ("p50", "p95", "p99", "mean", "max")


_FILE_LINK = re.compile(r"\[([^\]]+)\]\((?![a-z]+://)[^)]*\)")


def summary_markdown(summary: str) -> str:
    """summary.md as the tab shows it: its links to the report's own files (relative) only make sense beside them;
    the tab has its own downloads."""
    return _FILE_LINK.sub(r"\1", summary)


def in_fields(message: str) -> str:
    """An options error as the tab says it: with the field to fix instead of the flag."""
    for flag, field in FIELDS.items():
        message = message.replace(flag, field)
    return message


def seconds(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) and not isinstance(value, bool) else "—"


def failures_total(report: dict[str, Any]) -> int:
    return sum(n for n in report.get("failures", {}).values() if isinstance(n, int))


def progress_line(progress: dict[str, Any]) -> str:
    """One line of the live log, from what the runner reports about once a second."""
    return (f"{progress.get('elapsed_s') or 0:6.0f} s · {progress.get('users', 0)} users · "
            f"{progress.get('requests', 0)} requests · {progress.get('failures', 0)} failures · "
            f"p50 {seconds(progress.get('p50_s'))} s")


def _started(report: dict[str, Any]) -> str:
    try:
        return datetime.fromisoformat(str(report.get("started_at"))).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return "—"


def title(report_id: str, report: dict[str, Any]) -> str:
    options = report.get("options", {})
    version = f" v{report['version']}" if report.get("version") else ""
    return (f"Load test {report_id}: {report.get('slug')}{version} · {options.get('users')} users for "
            f"{options.get('duration_s')} s · {report.get('target', 'local')} · {_started(report)}")


def numbers_markdown(report: dict[str, Any]) -> str:
    """The numbers table: percentiles of each time (from the runs' own records), throughput and failures."""
    lines = ["| seconds | " + " | ".join(STATS) + " |", "|---|" + "---:|" * len(STATS)]
    for label, key in TIMES:
        stats = report.get(key) or {}
        lines.append(f"| {label} | " + " | ".join(seconds(stats.get(s)) for s in STATS) + " |")
    kinds = report.get("failures") or {}
    failed = ", ".join(f"{kind} × {count}" for kind, count in sorted(kinds.items()) if count) or "none"
    lines += ["", f"**{report.get('requests', 0)} requests**, {report.get('successes', 0)} succeeded · "
                  f"**{seconds(report.get('runs_per_min'))} runs/min** · failures: {failed}"]
    return "\n".join(lines)


def choice(listed: Listed) -> tuple[str, str]:
    """(label, id) for the report choosers."""
    if listed.report is None:
        return f"{listed.id} · (no report)", listed.id
    data = listed.report.data
    return f"{listed.id} · {data.get('slug')} · {data['options'].get('users')} users · {_started(data)}", listed.id


def listing_rows(listed: list[Listed]) -> list[list[Any]]:
    rows = []
    for entry in listed:
        if entry.report is None:
            rows.append([entry.id, "", "", "", "", "", "", "", "", "", "", entry.problem or ""])
            continue
        data, options = entry.report.data, entry.report.data["options"]
        rows.append([entry.id, data.get("slug"), data.get("target", "local"), _started(data), options.get("users"),
                     options.get("duration_s"), data["requests"], failures_total(data),
                     seconds(data["total_s"].get("p50")), seconds(data["total_s"].get("p95")),
                     seconds(data.get("runs_per_min")), ""])
    return rows


def _change(a: Any, b: Any) -> str:
    """B against A, in percent: how much more or less."""
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))
    if not numbers or a == 0:
        return ""
    return f"{(b - a) / a * 100:+.0f}%"


def comparison_markdown(a_id: str, a: dict[str, Any], b_id: str, b: dict[str, Any]) -> str:
    """Two reports' numbers in one table, with how B differs from A."""
    rows: list[tuple[str, Any, Any, str]] = []
    for label, key in (("Users", "users"), ("Spawn rate /s", "spawn_rate"), ("Duration s", "duration_s"),
                       ("Think min s", "think_min_s"), ("Think max s", "think_max_s")):
        rows.append((label, a["options"].get(key), b["options"].get(key), ""))
    for label, key in (("Requests", "requests"), ("Successes", "successes")):
        rows.append((label, a[key], b[key], _change(a[key], b[key])))
    rows.append(("Failures", failures_total(a), failures_total(b), ""))
    rows.append(("Runs/min", seconds(a.get("runs_per_min")), seconds(b.get("runs_per_min")),
                 _change(a.get("runs_per_min"), b.get("runs_per_min"))))
    for label, key in TIMES:
        for stat in ("p50", "p95", "p99"):
            va, vb = a[key].get(stat), b[key].get(stat)
            rows.append((f"{label} {stat} s", seconds(va), seconds(vb), _change(va, vb)))
    lines = [f"| | {a_id} ({a.get('slug')}) | {b_id} ({b.get('slug')}) | {b_id} vs {a_id} |", "|---|---:|---:|---:|"]
    lines += [f"| {label} | {va if va is not None else '—'} | {vb if vb is not None else '—'} | {change} |"
              for label, va, vb, change in rows]
    return "\n".join(lines)


def plot_pairs(a_id: str, a: list[Path], b_id: str | None = None, b: list[Path] | None = None,
               ) -> list[tuple[tuple[Path, str] | None, tuple[Path, str] | None]]:
    """The plots as rows of two (path, label) cells: one report fills the rows in reading order; two reports put
    the same plot of each side by side, A on the left."""
    if b is None or b_id is None:
        cells = [(p, f"{a_id} · {p.stem.replace('_', ' ')}") for p in a]
        return [(cells[i], cells[i + 1] if i + 1 < len(cells) else None) for i in range(0, len(cells), 2)]
    names = list(dict.fromkeys([p.name for p in a] + [p.name for p in b]))
    by_a, by_b = {p.name: p for p in a}, {p.name: p for p in b}

    def cell(report_id: str, path: Path | None) -> tuple[Path, str] | None:
        return (path, f"{report_id} · {path.stem.replace('_', ' ')}") if path else None

    return [(cell(a_id, by_a.get(name)), cell(b_id, by_b.get(name))) for name in names]
