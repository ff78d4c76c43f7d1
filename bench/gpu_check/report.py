"""The check's verdicts, its table (ratios against the bare engine of the same run) and its JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def verdicts(result: dict[str, Any], *, cpu_only: bool) -> list[tuple[str, str]]:
    """(check, "ok" | "FAILED: why" | "skipped: why") for what the check is for. On the CPU the GPU checks are
    skipped, never failed: the flow itself is what a CPU run verifies."""
    gpu = result["gpu_present"] and not cpu_only
    why_not = "skipped: no GPU" if not result["gpu_present"] else "skipped: --cpu"
    bare, snapshot = result.get("bare") or {}, result.get("snapshot") or {}
    checks: list[tuple[str, str]] = []
    engines = bare.get("engines") or []
    checks.append(("bare engines ran txt2img", f"FAILED: {'; '.join(bare['failed'])}" if bare.get("failed")
                   else "ok" if engines else "FAILED: no engine ran"))
    if gpu:
        off = [e["name"] for e in engines if not e["device"]["on_gpu"]]
        checks.append(("bare engines computed on the GPU", f"FAILED: {', '.join(off)} not on CUDA" if off else "ok"))
    else:
        checks.append(("bare engines computed on the GPU", why_not))
    hidden = (snapshot.get("device_while_hidden") or {}).get("device")
    checks.append(("engine started with CUDA hidden computes on the CPU",
                   "not reached" if not snapshot else "ok" if hidden == "cpu" else f"FAILED: it reports {hidden!r}"))
    hand_over = snapshot.get("hand_over", "not reached")
    if gpu:
        checks.append(("GPU handed over without a restart",
                       "ok" if snapshot.get("hand_over_restarted") is False else f"FAILED: {hand_over}"))
        on_gpu = (snapshot.get("device") or {}).get("on_gpu")
        checks.append(("handed-over engine computed on the GPU", "ok" if on_gpu else "FAILED: not on CUDA"))
    else:
        checks.append(("GPU handed over without a restart", hand_over))
        checks.append(("handed-over engine computed on the GPU", why_not))
    container = snapshot.get("container_run")
    checks.append(("container run path (ContainerWorker.run)",
                   "not reached" if container is None else "ok" if container["status"] == "succeeded"
                   else f"FAILED: {container}"))
    nvml = result.get("nvml") or {}
    if gpu and "phases" in nvml:
        idle = [phase for phase in ("bare runs", "snapshot runs")
                if not any(reading["util_max_pct"] > 0 for reading in nvml["phases"].get(phase, {}).values())]
        checks.append(("NVML saw the GPU busy during both sides' runs",
                       f"FAILED: no utilisation during {', '.join(idle)}" if idle else "ok"))
    checks.append(("NVML read during the runs", nvml["skipped"] if "skipped" in nvml else
                   f"FAILED: sampling stopped: {nvml['sample_error']}" if "sample_error" in nvml else
                   "ok" if nvml.get("phases") else "FAILED: no samples"))
    return checks


def table(result: dict[str, Any]) -> str:
    """Start, hand-over, first and warm runs per side, and the snapshot side's ratios to the bare engine."""
    w = result["workload"]
    steps = f"{w['steps']} step{'s' if w['steps'] != 1 else ''}"
    lines = [f"GPU check: ComfyUI txt2img {w['size']}x{w['size']}, {steps}, tiny random SD1.5 checkpoint, "
             f"1 first + {w['warm_runs']} warm runs per side; {result['gpu_summary']}"]
    header = f"{'side':<34}{'start s':>9}{'hand-over s':>13}{'first run s':>13}{'warm p50 s':>12}{'warm p95 s':>12}" \
             f"{'exec p50 s':>12}  device"
    lines += [header, "-" * len(header)]

    def row(name: str, side: dict[str, Any], start: float | None, hand_over: float | None) -> str:
        device = side.get("device") or {}
        return (f"{name:<34}{_n(start):>9}{_n(hand_over):>13}{_n(side.get('first_run_s')):>13}"
                f"{_n(side.get('warm_p50_s')):>12}{_n(side.get('warm_p95_s')):>12}"
                f"{_n(side.get('warm_exec_p50_s')):>12}  {device.get('name') or '?'}")

    bare = result.get("bare") or {}
    for engine in bare.get("engines") or []:
        lines.append(row(f"bare {engine['name']} ({engine['label']})", engine, engine.get("start_s"), None))
    snapshot = result.get("snapshot") or {}
    if snapshot.get("first_run_s") is not None:
        lines.append(row("CUDA hidden, then hand-over", snapshot, snapshot.get("start_hidden_s"),
                         snapshot.get("hand_over_s")))
        first = (bare.get("engines") or [{}])[0]
        lines.append(f"{'ratio hand-over / bare':<34}{_x(snapshot.get('start_hidden_s'), first.get('start_s')):>9}"
                     f"{'':>13}{_x(snapshot.get('first_run_s'), first.get('first_run_s')):>13}"
                     f"{_x(snapshot.get('warm_p50_s'), first.get('warm_p50_s')):>12}"
                     f"{_x(snapshot.get('warm_p95_s'), first.get('warm_p95_s')):>12}"
                     f"{_x(snapshot.get('warm_exec_p50_s'), first.get('warm_exec_p50_s')):>12}")
        lines.append(f"hand-over: {snapshot.get('hand_over')}"
                     + (f"; the runs above went to {snapshot['runs_on']}" if "runs_on" in snapshot else ""))
    lines.append(f"NVML: {nvml_line(result.get('nvml') or {})}")
    lines += [f"  {name}: {status}" for name, status in result["checks"]]
    return "\n".join(lines)


def nvml_line(nvml: dict[str, Any]) -> str:
    if "skipped" in nvml:
        return nvml["skipped"]
    parts = []
    for phase, gpus in (nvml.get("phases") or {}).items():
        for index, reading in gpus.items():
            parts.append(f"{phase} gpu{index} util max {reading['util_max_pct']}% mean {reading['util_mean_pct']}%, "
                         f"memory max {reading['memory_used_max_mib']} MiB")
    return "; ".join(parts) or "no samples"


def write_json(out: Path, result: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "gpu_check.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _x(value: float | None, base: float | None) -> str:
    return "-" if value is None or not base else f"x{value / base:.2f}"
