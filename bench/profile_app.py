"""Run launch.py under cProfile in every thread, and write the merged stats when it exits.

    python -m bench.profile_app OUT.prof [launch.py arguments...]

cProfile alone sees only the main thread, while the app does much of its work elsewhere: sync routes and
dependencies run in anyio's worker threads, DB writes in asyncio.to_thread. Each thread gets its own profiler
here (started from threading.setprofile), and all are merged at exit. The benchmarks start the server this way
with --profile; profiling slows the server, so its timings are for "where does the time go", not for the table.

With BENCH_PROFILE_CLOCK=cpu each thread is timed by its own CPU clock instead of the wall clock: a thread
waiting for the GIL, a lock or the network then counts nothing, which is what to read on a busy machine.
"""

from __future__ import annotations

import atexit
import cProfile
import os
import pstats
import sys
import threading
import time
from pathlib import Path
from typing import Any

_profiles: list[cProfile.Profile] = []
_lock = threading.Lock()


class _Snapshot:
    """What pstats.Stats wants from a profile (create_stats + stats) without disabling it from another thread."""

    def __init__(self, profile: cProfile.Profile) -> None:
        profile.snapshot_stats()
        self.stats = profile.stats  # type: ignore[attr-defined]

    def create_stats(self) -> None:
        pass


def _start_thread_profile(*_: Any) -> None:
    # Called once on a new thread's first event; enabling a profiler replaces this hook for that thread.
    cpu = os.environ.get("BENCH_PROFILE_CLOCK") == "cpu"
    profile = cProfile.Profile(time.thread_time) if cpu else cProfile.Profile()
    with _lock:
        _profiles.append(profile)
    profile.enable()


def _dump(out: Path) -> None:
    with _lock:
        snapshots = [_Snapshot(p) for p in _profiles]
    if not snapshots:
        return
    stats = pstats.Stats(snapshots[0])
    for snapshot in snapshots[1:]:
        stats.add(snapshot)
    out.parent.mkdir(parents=True, exist_ok=True)
    stats.dump_stats(str(out))
    print(f"profile of {len(snapshots)} thread(s) written to {out}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    out = Path(argv[0]).resolve()
    sys.argv = ["launch.py", *argv[1:]]
    import launch  # after sys.argv is set: launch parses it

    threading.setprofile(_start_thread_profile)
    atexit.register(_dump, out)
    _start_thread_profile()
    return launch.main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
