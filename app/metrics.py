"""Live metrics for GET /metrics, in the Prometheus text format, on a registry of the app's own (several apps in
one process, e.g. tests, never share series).

Events (a run submitted, a run ended, a webhook delivery ended) are counted as they happen, through the small
callbacks handed to the run service, the recorder and the webhooks. State that already exists elsewhere (the
queue, the workers, the engines' restarts, the GPUs) is read at scrape time by a collector, never mirrored."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.runs.views import RunOut

log = logging.getLogger(__name__)

PREFIX = "comfy_publisher"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds: a demo run takes milliseconds, an SDXL run on a CPU minutes; a queue may hold runs for hours.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, float("inf"))


@dataclass(frozen=True)
class LiveState:
    """Where the scrape-time numbers come from (callables, so the collector holds no copy of the state)."""

    queued: Callable[[], int]  # runs waiting for a local worker
    workers: Callable[[], int]  # local workers (one per engine in the pool)
    busy: Callable[[], int]  # local workers running a run now
    engine_restarts: Callable[[], dict[str, int]]  # engine name -> restarts since the app started


class Metrics:
    def __init__(self, live: LiveState, gpus: GpuCollector | None = None) -> None:
        self.registry = CollectorRegistry()
        self.runs = Counter(f"{PREFIX}_runs", "Runs that ended, by app and final status",
                            ["app", "status"], registry=self.registry)
        self.submitted = Counter(f"{PREFIX}_runs_submitted", "Runs accepted (a repeated Idempotency-Key is not "
                                 "counted again), by app", ["app"], registry=self.registry)
        self.queue_wait = Histogram(f"{PREFIX}_run_queue_wait_seconds", "From a run's creation to its (last) start, "
                                    "by app", ["app"], buckets=DURATION_BUCKETS, registry=self.registry)
        self.execution = Histogram(f"{PREFIX}_run_execution_seconds", "From a run's (last) start to its end, "
                                   "by app", ["app"], buckets=DURATION_BUCKETS, registry=self.registry)
        self.deliveries = Counter(f"{PREFIX}_webhook_deliveries", "Webhook deliveries that ended, by outcome "
                                  "(delivered, or failed after their retries)", ["outcome"], registry=self.registry)
        self.registry.register(LiveCollector(live))
        self.registry.register(gpus or GpuCollector())

    # --- the hooks (events) ----------------------------------------------------------------------------------

    def run_submitted(self, app: str) -> None:
        self.submitted.labels(app=app).inc()

    def run_ended(self, run: RunOut) -> None:
        self.runs.labels(app=run.app, status=run.status).inc()
        if run.started_at is not None:  # a run cancelled in the queue never started: no wait, no execution
            self.queue_wait.labels(app=run.app).observe(_seconds(run.created_at, run.started_at))
            if run.finished_at is not None:
                self.execution.labels(app=run.app).observe(_seconds(run.started_at, run.finished_at))

    def delivery_ended(self, delivered: bool) -> None:
        self.deliveries.labels(outcome="delivered" if delivered else "failed").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _seconds(start: Any, end: Any) -> float:
    return max(0.0, (end - start).total_seconds())


class LiveCollector(Collector):
    """The queue, the workers and the engines' restarts as they are at the scrape."""

    def __init__(self, live: LiveState) -> None:
        self.live = live

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(f"{PREFIX}_queue_length", "Runs waiting for a local worker",
                                value=self.live.queued())
        workers, busy = self.live.workers(), self.live.busy()
        states = GaugeMetricFamily(f"{PREFIX}_workers", "Local workers (engines) by state", labels=["state"])
        states.add_metric(["busy"], busy)
        states.add_metric(["idle"], max(0, workers - busy))
        yield states
        restarts = CounterMetricFamily(f"{PREFIX}_engine_restarts", "Restarts of a crashed engine process since "
                                       "the app started, by engine", labels=["engine"])
        for engine, count in sorted(self.live.engine_restarts().items()):
            restarts.add_metric([engine], count)
        yield restarts


class GpuCollector(Collector):
    """Utilisation and memory of each GPU NVML finds. No NVML (no driver, no GPU) or an NVML error: no GPU series,
    never a failed scrape."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nvml: Any = None  # the pynvml module once initialised; False once it failed to (not retried)

    def _init(self) -> Any:
        with self._lock:
            if self._nvml is None:
                try:
                    import pynvml

                    pynvml.nvmlInit()
                    self._nvml = pynvml
                except Exception as exc:  # no library, no driver, no GPU: the usual case on a CPU machine
                    log.info("no GPU metrics: NVML is not available (%s)", exc)
                    self._nvml = False
            return self._nvml

    def collect(self) -> Iterator[Metric]:
        nvml = self._init()
        if not nvml:
            return
        try:
            rows = []
            for index in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                name = nvml.nvmlDeviceGetName(handle)
                name = name.decode() if isinstance(name, bytes) else str(name)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                rows.append(([str(index), name], nvml.nvmlDeviceGetUtilizationRates(handle).gpu, memory.used,
                             memory.total))
        except Exception as exc:  # a GPU lost or NVML broken mid-flight: skip this scrape's GPU series
            log.warning("GPU metrics skipped: NVML failed (%s)", exc)
            return
        utilisation = GaugeMetricFamily(f"{PREFIX}_gpu_utilization_percent", "GPU busy time over NVML's last "
                                        "sample period", labels=["gpu", "name"])
        used = GaugeMetricFamily(f"{PREFIX}_gpu_memory_used_bytes", "GPU memory in use", labels=["gpu", "name"])
        total = GaugeMetricFamily(f"{PREFIX}_gpu_memory_total_bytes", "GPU memory in all", labels=["gpu", "name"])
        for labels, percent, used_bytes, total_bytes in rows:
            utilisation.add_metric(labels, percent)
            used.add_metric(labels, used_bytes)
            total.add_metric(labels, total_bytes)
        yield from (utilisation, used, total)
