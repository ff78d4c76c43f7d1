"""Shared by the service benchmarks: the real app as a subprocess (like a user starts it), API keys from its CLI,
publishing over HTTP, the tiny test checkpoint, and CPU accounting of processes from /proc.

Not a benchmark itself; gateway_overhead, worker_scaling, queue_capacity and soak import it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.client_overhead import DEFAULT_ENGINE_HOME, percentile
from runtimes.engine.manager import Engine, EngineManager, EngineSettings
from tests.support.server import AppServer

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def code_version() -> dict[str, Any]:
    """The commit measured, and whether the app's code differed from it (bench/ itself does not count)."""
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return result.stdout.strip()

    changed = git("status", "--porcelain", "--", ".", ":(exclude)bench")
    return {"commit": git("rev-parse", "--short", "HEAD") or None, "uncommitted_changes": bool(changed)}


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def common_arguments(parser: argparse.ArgumentParser, results: Path, profile: Path | None = None) -> None:
    """The options every service benchmark takes: the engine install, the results file, and --profile where the
    benchmark supports it (`profile`: where the stats go)."""
    parser.add_argument("--engine-home", type=Path, default=DEFAULT_ENGINE_HOME,
                        help=f"where the bundled engine is installed (default {DEFAULT_ENGINE_HOME})")
    parser.add_argument("--output", type=Path, default=results, help=f"JSON results file (default {results})")
    if profile is not None:
        parser.add_argument("--profile", action="store_const", const=profile, default=None,
                            help=f"run the server under cProfile (all threads), write {profile} and print its top "
                                 "functions; slows the server, so the table then shows profiled figures")


def finish(result: dict[str, Any], args: argparse.Namespace, print_table: Callable[[dict[str, Any]], None],
           **settings: Any) -> None:
    """Every benchmark's end: the settings (with the commit measured) into the result, the table, the JSON file,
    and the profile's top functions when the server was profiled."""
    profile = getattr(args, "profile", None)
    result["settings"] = run_settings(**settings, **({"profiled": True} if profile else {}))
    print_table(result)
    write_results(args.output, result)
    if profile:
        print_profile(profile)


def run_settings(**options: Any) -> dict[str, Any]:
    """A benchmark's options with what makes its figures comparable: commit, Python, cores, when."""
    return {**options, **code_version(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def write_results(path: Path, result: dict[str, Any]) -> None:
    """The results as JSON at `path`, and a line saying which commit they measured."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    settings = result["settings"]
    print(f"wrote {path} (commit {settings['commit']}"
          f"{', with uncommitted changes' if settings['uncommitted_changes'] else ''})")


def thread_env(threads: int | None) -> dict[str, str]:
    """Env that caps torch's intra-op threads in engines started from this environment (they inherit it).

    None leaves it to the app and torch: torch takes one thread per core, and since 24fea03 the app gives each of
    several CPU engines cores / engines threads itself (overriding this env), so it then only shapes a lone engine.
    """
    if threads is None:
        return {}
    return {name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


class AppProcess(AppServer):
    """The tests' harness (tests/support/server.py) run as users run the app: no test-only checks, a bundled
    engine from `engine_home`, longer limits (engines load models)."""

    def __init__(self, data_dir: Path, *, comfyui_url: str | None = None, workers: int | None = None,
                 max_queue: int | None = None, env: Mapping[str, str] | None = None, extra: tuple[str, ...] = (),
                 profile: Path | None = None, engine_home: Path = DEFAULT_ENGINE_HOME, poll_s: float = 0.2) -> None:
        super().__init__(data_dir, comfyui_url=comfyui_url, workers=workers, env=env, engine_home=engine_home,
                         extra=(*(["--max-queue", str(max_queue)] if max_queue else []), *extra),
                         test_mode=False, profile=profile, poll_s=poll_s)

    def start(self, timeout: float = 240.0, *, until: str = "/readyz") -> AppProcess:
        super().start(timeout, until=until)
        return self

    def stop(self, timeout: float = 60.0) -> None:
        super().stop(timeout)


@dataclass(frozen=True)
class EngineAndApp:
    engine: Engine
    server: AppProcess
    key: str  # an admin API key
    checkpoint: str  # the tests' tiny checkpoint, as the engine lists it

    @property
    def engine_pid(self) -> int | None:
        return self.engine.process.pid if self.engine.process else None


@contextmanager
def engine_and_app(prefix: str, engine_home: Path, **app_options: Any) -> Iterator[EngineAndApp]:
    """One bundled engine (the tiny checkpoint linked) and one app server at it, in a temporary folder; when
    anything fails, the app's last log lines are shown."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        engine_dir = Path(tmp) / "engine"
        checkpoint = link_checkpoint(engine_dir / "comfyui")
        manager = EngineManager(EngineSettings(data_dir=engine_dir, engine_home=engine_home, disable_api_nodes=True),
                                progress=progress)
        server: AppProcess | None = None
        try:
            (engine, *_) = manager.start()
            server = AppProcess(Path(tmp) / "app", comfyui_url=engine.url, **app_options).start()
            yield EngineAndApp(engine, server, server.create_key("bench", admin=True), checkpoint)
        except BaseException:
            if server is not None:
                progress(f"--- last lines of the app's log:\n{server.log_tail()}")
            raise
        finally:
            if server is not None:
                stop_started = time.perf_counter()
                server.stop()
                progress(f"app stopped in {time.perf_counter() - stop_started:.1f} s")
            manager.stop()


def publish(base_url: str, admin_key: str, **body: Any) -> str:
    """POST /api/apps; returns the slug."""
    response = httpx.post(f"{base_url}/api/apps", json=body, headers={"Authorization": f"Bearer {admin_key}"},
                          timeout=60, trust_env=False)
    if response.status_code != 201:
        raise RuntimeError(f"publishing {body.get('name')!r} failed: {response.status_code} {response.text}")
    return response.json()["slug"]


def link_checkpoint(comfyui_base: Path) -> str:
    """Make the tests' tiny random-weight SD1.5 checkpoint visible to engines whose base dir is `comfyui_base`
    (synthesized once by tests.setup, cached by version). Returns the name the engines list it under."""
    from tests import setup  # the tests own the checkpoint's recipe and cache; imported only when needed
    from tests.support.paths import CHECKPOINT, CHECKPOINT_NAME

    if not CHECKPOINT.exists():
        setup.main()
    link = comfyui_base / "models" / "checkpoints" / CHECKPOINT_NAME
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(CHECKPOINT)
    return CHECKPOINT_NAME


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads), from /proc; 0.0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime (fields 14 and 15 of stat)


def sched_seconds(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) summed over a process's live threads, from
    /proc/PID/task/*/schedstat. The second one tells CPU starvation (a busy machine) from idling (waiting on I/O,
    on the network, on a lock)."""
    on_cpu = waiting = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return 0.0, 0.0
    for task in tasks:
        try:
            fields = Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended in between
        on_cpu += int(fields[0])
        waiting += int(fields[1])
    return on_cpu / 1e9, waiting / 1e9


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores: user, nice, system, irq, softirq), /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (fields[0] + fields[1] + fields[2] + fields[5] + fields[6]) / _CLOCK_TICKS


class CpuWindow:
    """Where the machine's CPU went over one or more windows: the named processes, this client, everything else.

    "Other" should be near 0 on a quiet machine; when it is not, something outside the benchmark competed for
    the cores and the figures of that run are suspect (the tables print it so a reader can tell)."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)
        self.wall_s = self.machine_s = self.client_s = 0.0
        self.process_s = dict.fromkeys(self.pids, 0.0)
        self._start: tuple[float, float, float, dict[str, float]] | None = None

    def _processes(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def __enter__(self) -> CpuWindow:
        self._start = (time.perf_counter(), machine_busy_seconds(), time.process_time(), self._processes())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._start is not None
        wall, machine, client, processes = self._start
        self.wall_s += time.perf_counter() - wall
        self.machine_s += machine_busy_seconds() - machine
        self.client_s += time.process_time() - client
        for name, seconds in self._processes().items():
            self.process_s[name] += seconds - processes[name]

    def summary(self) -> dict[str, float]:
        """Cores used on average over the window(s): the machine, each named process, this client, the rest."""
        wall = self.wall_s or 1.0
        known = sum(self.process_s.values()) + self.client_s
        return {"machine_cores": self.machine_s / wall,
                **{f"{name}_cores": seconds / wall for name, seconds in self.process_s.items()},
                "client_cores": self.client_s / wall, "other_cores": max(0.0, self.machine_s - known) / wall}


BUSY_MACHINE_CORES = 0.15  # "other" load above this: something else ran during the benchmark


def busy_warning(other_cores: float) -> str | None:
    """A line for the table when processes outside the benchmark took CPU during it (e.g. a test run)."""
    if other_cores <= BUSY_MACHINE_CORES:
        return None
    return (f"WARNING: other processes used {other_cores:.2f} cores during the measurement: the machine was not "
            "quiet, so these figures understate what the service does; run again on a quiet machine.")


def latency_summary(values_ms: list[float]) -> dict[str, float]:
    return {"n": len(values_ms), "p50_ms": percentile(values_ms, 50), "p95_ms": percentile(values_ms, 95),
            "p99_ms": percentile(values_ms, 99), "max_ms": max(values_ms)}


def print_profile(path: Path, limit: int = 25) -> None:
    """The functions where the profiled server spent its own time, then the app's own by cumulative time."""
    stats = pstats.Stats(str(path), stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(re.escape(str(REPO)) + r"/(app|db|publisher|runtimes)/", limit)


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"
