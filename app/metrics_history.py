"""The studio's live metrics: samples of the app's own Prometheus registry (app/metrics.py, read in-process, not
over HTTP) kept for a few minutes, and what the Metrics tab shows from them: the numbers now, percentiles from the
histograms, and per-sample series for its charts. No gradio here: the tab only shows it."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from app.metrics import PREFIX

HISTORY_S = 300.0  # what the charts show
MIN_INTERVAL_S = 1.0  # two studio pages open at once share a sample rather than take one each
RECENT_S = 60.0  # the charts' percentiles: runs that ended within this window

Buckets = tuple[tuple[float, float], ...]  # (upper bound, cumulative count), ascending, +Inf last


@dataclass(frozen=True)
class Gpu:
    index: str
    name: str
    utilization_percent: float
    memory_used_bytes: float
    memory_total_bytes: float


@dataclass(frozen=True)
class Sample:
    t: float  # time.monotonic() when taken
    runs: dict[tuple[str, str], float]  # (app, status) -> runs ended
    submitted: dict[str, float]  # app -> runs accepted
    queue_length: float
    workers_busy: float
    workers_idle: float
    engine_restarts: dict[str, float]
    deliveries: dict[str, float]  # outcome -> deliveries ended
    queue_wait: Buckets  # all apps together
    execution: Buckets
    gpus: tuple[Gpu, ...] = ()

    @property
    def runs_ended(self) -> float:
        return sum(self.runs.values())


def read(registry: CollectorRegistry, now: float) -> Sample:
    """One sample of the registry (its collectors run: the queue, workers, engines and GPUs are read now)."""
    runs: dict[tuple[str, str], float] = {}
    submitted: dict[str, float] = {}
    restarts: dict[str, float] = {}
    deliveries: dict[str, float] = {}
    workers: dict[str, float] = {}
    buckets: dict[str, dict[float, float]] = {"queue_wait": {}, "execution": {}}
    gpu_values: dict[tuple[str, str], dict[str, float]] = {}
    queue = 0.0
    for family in registry.collect():
        for s in family.samples:
            name, labels, value = s.name, s.labels, s.value
            if name == f"{PREFIX}_runs_total":
                runs[(labels["app"], labels["status"])] = value
            elif name == f"{PREFIX}_runs_submitted_total":
                submitted[labels["app"]] = value
            elif name == f"{PREFIX}_queue_length":
                queue = value
            elif name == f"{PREFIX}_workers":
                workers[labels["state"]] = value
            elif name == f"{PREFIX}_engine_restarts_total":
                restarts[labels["engine"]] = value
            elif name == f"{PREFIX}_webhook_deliveries_total":
                deliveries[labels["outcome"]] = value
            elif name in (f"{PREFIX}_run_queue_wait_seconds_bucket", f"{PREFIX}_run_execution_seconds_bucket"):
                kind = "queue_wait" if "queue_wait" in name else "execution"
                bound = float(labels["le"])
                buckets[kind][bound] = buckets[kind].get(bound, 0.0) + value  # summed over the apps
            elif name.startswith(f"{PREFIX}_gpu_"):
                gpu_values.setdefault((labels["gpu"], labels["name"]), {})[name] = value
    gpus = tuple(Gpu(index=i, name=n, utilization_percent=v.get(f"{PREFIX}_gpu_utilization_percent", 0.0),
                     memory_used_bytes=v.get(f"{PREFIX}_gpu_memory_used_bytes", 0.0),
                     memory_total_bytes=v.get(f"{PREFIX}_gpu_memory_total_bytes", 0.0))
                 for (i, n), v in sorted(gpu_values.items()))
    return Sample(t=now, runs=runs, submitted=submitted, queue_length=queue, workers_busy=workers.get("busy", 0.0),
                  workers_idle=workers.get("idle", 0.0), engine_restarts=restarts, deliveries=deliveries,
                  queue_wait=tuple(sorted(buckets["queue_wait"].items())),
                  execution=tuple(sorted(buckets["execution"].items())), gpus=gpus)


def quantile(q: float, buckets: Buckets) -> float | None:
    """Prometheus' histogram_quantile: linear within the bucket that holds the q-th observation (the largest
    finite bound when it falls in +Inf). None without observations."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, cumulative in buckets:
        if cumulative >= rank and cumulative > below:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / (cumulative - below)
        lower, below = bound if not math.isinf(bound) else lower, cumulative
    return lower


def difference(new: Buckets, old: Buckets) -> Buckets:
    """The observations made between two samples of the same histogram."""
    before = dict(old)
    return tuple((bound, count - before.get(bound, 0.0)) for bound, count in new)


@dataclass
class MetricsHistory:
    """Samples of one registry over the last `history_s` seconds. Thread-safe: every open studio page shares it."""

    registry: CollectorRegistry
    history_s: float = HISTORY_S
    min_interval_s: float = MIN_INTERVAL_S
    clock: Callable[[], float] = time.monotonic
    _samples: deque[Sample] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def sample(self) -> Sample:
        """A fresh sample, or the last one if it is younger than min_interval_s."""
        with self._lock:
            now = self.clock()
            if self._samples and now - self._samples[-1].t < self.min_interval_s:
                return self._samples[-1]
            taken = read(self.registry, now)
            self._samples.append(taken)
            while self._samples and now - self._samples[0].t > self.history_s:
                self._samples.popleft()
            return taken

    def samples(self) -> list[Sample]:
        with self._lock:
            return list(self._samples)


def series(samples: Iterable[Sample], recent_s: float = RECENT_S) -> list[dict[str, float | str | None]]:
    """Long-format rows for the charts: {"s": seconds before the newest sample, "chart", "series", "value"}.
    Runs per minute between consecutive samples; p50/p95 of the runs that ended within `recent_s` before each
    sample; GPU utilisation and memory in percent. Every series has a row from the first sample on (None where
    nothing is known yet): a chart's series are fixed when it is first drawn."""
    taken = list(samples)
    if not taken:
        return []
    newest = taken[-1].t
    rows: list[dict[str, float | str | None]] = []

    def add(sample: Sample, chart: str, name: str, value: float | None) -> None:
        rows.append({"s": round(sample.t - newest, 3), "chart": chart, "series": name, "value": value})

    for i, sample in enumerate(taken):
        add(sample, "workers", "queue length", sample.queue_length)
        add(sample, "workers", "busy", sample.workers_busy)
        add(sample, "workers", "idle", sample.workers_idle)
        previous = taken[i - 1] if i else None
        add(sample, "throughput", "runs ended / min", None if previous is None else
            (sample.runs_ended - previous.runs_ended) / ((sample.t - previous.t) / 60))
        window = next((s for s in taken[: i + 1] if sample.t - s.t <= recent_s), sample)
        for label, buckets in (("execution", sample.execution), ("queue wait", sample.queue_wait)):
            old = window.execution if label == "execution" else window.queue_wait
            recent = difference(buckets, old) if window is not sample else ()
            for q in (0.5, 0.95):
                add(sample, "latency", f"{label} p{round(q * 100)}", quantile(q, recent))
        for gpu in sample.gpus:
            add(sample, "gpu", f"GPU {gpu.index} utilisation %", gpu.utilization_percent)
            if gpu.memory_total_bytes:
                add(sample, "gpu", f"GPU {gpu.index} memory %", 100 * gpu.memory_used_bytes / gpu.memory_total_bytes)
    return rows
