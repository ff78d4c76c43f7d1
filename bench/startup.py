"""Start-up: how long a second `python launch.py` takes to be ready (`/readyz` 200: database up, an engine ready)
against the bare engine alone (its `/system_stats` answers), started the same way, in one run.

    python -m bench.startup [--rounds 3] [--engine-home DIR]

"Second" start: the app's data dir exists and its database is migrated (a first, unmeasured start made them), as
when a user starts the app again; the engine is installed, and Python's bytecode caches of the app and the engine
were written by that first start (PYTHONDONTWRITEBYTECODE, set on some machines, is lifted for both sides: without
it every start compiles every module of both from source). The bare side launches the bundled engine as the app
does (`runtimes.engine.process.EngineProcess`: the same command line, its own base dir) and waits for it to
answer. The sides alternate, order swapped each round (ABBA), so drift on the machine hits both alike; both are
polled every 0.1 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.service import RESULTS_DIR, AppProcess, common_arguments, finish, progress, verdict
from runtimes.engine.install import BundledEngine
from runtimes.engine.process import EngineLaunch, EngineProcess

RESULTS = RESULTS_DIR / "startup.json"
TARGET_RATIO = 1.1  # the app is ready within 1.1x the bare engine's start


def time_bare(engine_home: Path, base: Path) -> float:
    install = BundledEngine.under(engine_home).ensure(progress)
    process = EngineProcess(EngineLaunch(install=install, base_dir=base / "comfyui", log_path=base / "engine.log",
                                         disable_api_nodes=True))
    began = time.perf_counter()
    try:
        process.start()
        return time.perf_counter() - began
    finally:
        process.stop()


def time_app(data_dir: Path, engine_home: Path) -> float:
    app = AppProcess(data_dir, engine_home=engine_home, poll_s=0.1)
    began = time.perf_counter()
    try:
        app.start()
        return time.perf_counter() - began
    finally:
        app.stop()


def measure(rounds: int, engine_home: Path, tmp: Path) -> dict[str, Any]:
    data_dir = tmp / "app"
    progress("First start of the app and of the bare engine (not measured): data dir, database, bytecode caches")
    time_app(data_dir, engine_home)
    time_bare(engine_home, tmp / "bare")
    times: dict[str, list[float]] = {"bare": [], "app": []}
    for i in range(rounds):
        order = ("bare", "app") if i % 2 == 0 else ("app", "bare")
        for side in order:
            seconds = time_bare(engine_home, tmp / "bare") if side == "bare" else time_app(data_dir, engine_home)
            times[side].append(seconds)
            progress(f"round {i + 1}/{rounds}: {side} ready in {seconds:.2f} s")
    summary = {side: {"runs_s": values, "median_s": statistics.median(values), "min_s": min(values)}
               for side, values in times.items()}
    ratio = summary["app"]["median_s"] / summary["bare"]["median_s"]
    return {"sides": summary, "app_over_bare": ratio,
            "target": {"app_over_bare_at_most": TARGET_RATIO, "met": ratio <= TARGET_RATIO}}


def print_table(result: dict[str, Any]) -> None:
    print(f"{'side':<6} {'median s':>9} {'min s':>7}  runs")
    for side, s in result["sides"].items():
        print(f"{side:<6} {s['median_s']:>9.2f} {s['min_s']:>7.2f}  " + ", ".join(f"{v:.2f}" for v in s["runs_s"]))
    t = result["target"]
    print(f"app/bare (median): x{result['app_over_bare']:.2f}; target <= x{t['app_over_bare_at_most']:g}: "
          f"{verdict(t['met'])}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="measured starts per side (default 3)")
    common_arguments(parser, RESULTS)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # inherited by both sides' processes
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        result = measure(args.rounds, args.engine_home, Path(tmp))
    finish(result, args, print_table, rounds=args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
