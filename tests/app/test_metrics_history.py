"""The studio's metrics samples and chart series (app/metrics_history.py), read from a real app.metrics registry fed
through its own hooks. The GPU collector is replaced only where a GPU is needed: none is here."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.metrics import PREFIX, GpuCollector, LiveState, Metrics
from app.metrics_history import MetricsHistory, quantile, series
from app.runs.views import RunOut, Timings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Live:
    def __init__(self) -> None:
        self.queued, self.workers, self.busy, self.restarts = 0, 2, 0, {"gpu0": 0}

    def state(self) -> LiveState:
        return LiveState(queued=lambda: self.queued, workers=lambda: self.workers, busy=lambda: self.busy,
                         engine_restarts=lambda: dict(self.restarts))


class NoGpu(GpuCollector):
    def collect(self) -> Iterator[Metric]:
        return iter(())


class OneGpu(Collector):
    def collect(self) -> Iterator[Metric]:
        for metric, value in (("utilization_percent", 40), ("memory_used_bytes", 3e9), ("memory_total_bytes", 12e9)):
            family = GaugeMetricFamily(f"{PREFIX}_gpu_{metric}", "", labels=["gpu", "name"])
            family.add_metric(["0", "NVIDIA A10"], value)
            yield family


def ended(app: str, status: str, wait_s: float, exec_s: float) -> RunOut:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    started = created + timedelta(seconds=wait_s)
    return RunOut(id="r", app=app, version=1, status=status, timings=Timings(queue_ms=None, exec_ms=None,
                  total_ms=None), inputs={}, created_at=created, started_at=started,
                  finished_at=started + timedelta(seconds=exec_s), urls={})


@pytest.fixture
def live() -> Live:
    return Live()


@pytest.fixture
def metrics(live: Live) -> Metrics:
    return Metrics(live.state(), gpus=NoGpu())


def test_a_sample_reads_the_numbers_of_the_registry(metrics: Metrics, live: Live) -> None:
    history = MetricsHistory(metrics.registry, clock=Clock())
    metrics.run_submitted("demo")
    metrics.run_ended(ended("demo", "succeeded", 0.2, 1.5))
    metrics.run_ended(ended("demo", "failed", 0.2, 0.5))
    metrics.run_ended(ended("other", "succeeded", 3, 30))
    metrics.delivery_ended(True)
    live.queued, live.busy, live.restarts = 3, 1, {"gpu0": 2}
    sample = history.sample()
    assert sample.runs == {("demo", "succeeded"): 1, ("demo", "failed"): 1, ("other", "succeeded"): 1}
    assert sample.submitted == {"demo": 1}
    assert (sample.queue_length, sample.workers_busy, sample.workers_idle) == (3, 1, 1)
    assert sample.engine_restarts == {"gpu0": 2} and sample.deliveries == {"delivered": 1}
    assert sample.execution[-1][1] == 3 and sample.queue_wait[-1][1] == 3  # both apps' histograms summed
    assert sample.gpus == ()


def test_gpus_are_read_where_present(live: Live) -> None:
    sample = MetricsHistory(Metrics(live.state(), gpus=OneGpu()).registry, clock=Clock()).sample()  # type: ignore[arg-type]
    assert [(g.name, g.utilization_percent, g.memory_used_bytes) for g in sample.gpus] == [("NVIDIA A10", 40, 3e9)]
    rows = series([sample])
    assert {r["series"]: r["value"] for r in rows if r["chart"] == "gpu"} == {"GPU 0 utilisation %": 40,
                                                                              "GPU 0 memory %": 25}


def test_histogram_percentiles_interpolate_within_the_bucket() -> None:
    buckets = ((1.0, 0.0), (2.0, 10.0), (5.0, 20.0), (float("inf"), 20.0))
    assert quantile(0.5, buckets) == 2.0
    assert quantile(0.25, buckets) == 1.5
    assert quantile(0.95, buckets) == pytest.approx(4.7)
    assert quantile(0.99, ((1.0, 0.0), (float("inf"), 4.0))) == 1.0  # beyond the largest bound: that bound
    assert quantile(0.5, ((1.0, 0.0), (float("inf"), 0.0))) is None


def test_the_history_keeps_a_few_minutes_and_pages_share_a_sample(metrics: Metrics) -> None:
    clock = Clock()
    history = MetricsHistory(metrics.registry, history_s=10, min_interval_s=1, clock=clock)
    first = history.sample()
    clock.now += 0.5
    assert history.sample() is first  # a second page within the interval
    for _ in range(20):
        clock.now += 2
        history.sample()
    kept = history.samples()
    assert kept[-1].t - kept[0].t <= 10 and len(kept) == 6


def test_series_give_throughput_and_the_recent_runs_percentiles(metrics: Metrics, live: Live) -> None:
    clock = Clock()
    history = MetricsHistory(metrics.registry, clock=clock)
    history.sample()
    clock.now += 30
    for exec_s in (0.3, 0.3, 0.3, 20):
        metrics.run_ended(ended("demo", "succeeded", 0.01, exec_s))
    live.queued = 2
    history.sample()
    clock.now += 120  # nothing ended in the last minute before this one
    history.sample()
    rows = series(history.samples(), recent_s=60)
    by = {(r["s"], r["series"]): r["value"] for r in rows}
    assert by[(-120.0, "runs ended / min")] == 8  # 4 runs in 30 s
    assert by[(0.0, "runs ended / min")] == 0
    assert by[(-120.0, "queue length")] == 2
    assert by[(-120.0, "execution p50")] == pytest.approx(0.25 + 0.25 * (2 - 0) / 3)  # 0.25-0.5 bucket
    assert 10 < by[(-120.0, "execution p95")] <= 30  # the slow one, in its 10-30 s bucket
    assert by[(0.0, "execution p50")] is None
    assert by[(-150.0, "runs ended / min")] is None  # the first sample: a row, no value yet
    assert series([]) == []
