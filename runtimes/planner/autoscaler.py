"""Simulate Modal's autoscaler serving closed-loop users, to estimate latency and cost of deploy settings.

The model (deterministic for a seed; standard library only):
- Users: each submits a request, waits for its result, thinks uniform(think_min, think_max) s, and repeats. The
  number of active users follows a schedule (a linear ramp, then steps for bursts); a user dropped by a step stops
  after its current request.
- Routing as Modal does it: inputs wait in one FIFO queue; a ready container with a free input slot (fewer than
  `max_inputs` in flight; the oldest container first) takes the oldest input. When the queued inputs outnumber the
  slots of the containers still starting, new containers start (up to `max_containers` alive), each ready after
  `cold_start_s`. With `scale_up_delay_s`, only inputs that have waited that long count: an autoscaler that lets
  an input wait briefly for a slot about to free, instead of starting a container for every momentary excess.
- In a container, a request's `overhead_s` (receiving, uploads, collecting outputs) runs concurrently, half before
  and half after its execution; `exec_s` is serialized, because ComfyUI executes one prompt at a time.
- A container idle (nothing in flight) for `idle_s` stops, unless that would leave fewer than `min_containers`;
  the warm pool (`min_containers`) is up and warm from the start.
- Cost: GPU price per hour x container-seconds alive (cold starts included) within [0, duration].
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def parse_think(text: str, flag: str = "--think") -> tuple[float, float]:
    """Think time as people type it: "MIN-MAX" seconds, or one number for both (the plan and loadtest CLIs, the
    Deploy tab's plan). Whether MIN <= MAX is Traffic's (or the caller's) check."""
    low, sep, high = text.partition("-")
    try:
        return (float(low), float(high)) if sep else (float(low), float(low))
    except ValueError:
        raise ValueError(f"{flag} takes MIN-MAX seconds, e.g. 1-5 (got '{text[:40]}')") from None


def nearest_rank(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of sorted values (0 for none)."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass(frozen=True)
class Traffic:
    """Closed-loop users: `users` after an optional linear ramp, changed at times by `steps` ((t, users), ...)."""

    users: int
    think_min_s: float
    think_max_s: float
    ramp_s: float = 0.0
    steps: tuple[tuple[float, int], ...] = ()

    def __post_init__(self) -> None:
        if self.users < 0 or any(n < 0 for _, n in self.steps):
            raise ValueError("users must be 0 or more")
        if not 0 <= self.think_min_s <= self.think_max_s:
            raise ValueError(f"think time must be MIN-MAX with 0 <= MIN <= MAX (got {self.think_min_s}-"
                             f"{self.think_max_s})")
        if self.ramp_s < 0 or any(t < 0 for t, _ in self.steps):
            raise ValueError("ramp and step times must be 0 or more seconds")

    def users_at(self, t: float) -> int:
        count = self.users if self.ramp_s <= 0 else min(self.users, math.floor(self.users * t / self.ramp_s) + 1)
        for at, n in sorted(self.steps):
            if t >= at:
                count = n
        return count

    def change_times(self) -> list[float]:
        """When the active count may change: each ramp arrival, and each step."""
        ramp = [self.ramp_s * i / self.users for i in range(self.users)] if self.ramp_s > 0 else [0.0]
        return sorted(set(ramp) | {at for at, _ in self.steps})


@dataclass(frozen=True)
class Deployment:
    """The Modal settings and the app's measured times."""

    exec_s: float
    overhead_s: float
    cold_start_s: float
    gpu_price_per_hour: float
    max_inputs: int = 1
    max_containers: int = 100
    min_containers: int = 0
    idle_s: float = 60.0
    scale_up_delay_s: float = 0.0  # how long an input waits in the queue before the autoscaler starts a container

    def __post_init__(self) -> None:
        if self.exec_s <= 0:
            raise ValueError("exec time must be more than 0 seconds")
        if self.overhead_s < 0 or self.cold_start_s < 0 or self.gpu_price_per_hour < 0:
            raise ValueError("overhead, cold start and GPU price must be 0 or more")
        if self.max_inputs < 1:
            raise ValueError("max inputs per container must be 1 or more")
        if self.max_containers < 1:
            raise ValueError("max containers must be 1 or more")
        if not 0 <= self.min_containers <= self.max_containers:
            raise ValueError(f"min containers must be 0..max containers ({self.max_containers}), "
                             f"got {self.min_containers}")
        if self.scale_up_delay_s < 0:
            raise ValueError("the scale-up delay must be 0 or more seconds")
        if self.idle_s < 0:
            raise ValueError("the idle window must be 0 or more seconds")


@dataclass
class Plan:
    """What the simulation found. Latencies in seconds, costs in dollars per minute of the simulated duration."""

    p50_s: float
    p95_s: float
    cost_per_min: float
    peak_containers: int
    first_request_s: float  # the slowest of each user's first request: what a cold start costs the first users
    warm_cost_per_min: float  # the warm pool on its own, always on
    requests: int
    last_scale_up_s: float  # when the last container was started: the pool has settled by then
    series: list[dict[str, float]] = field(default_factory=list)  # per second: t, users, containers, busy, queued
    latencies: list[float] = field(default_factory=list)  # each request's, in the order they finished

    def summary(self) -> dict[str, Any]:
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in self.__dict__.items()
                if k not in ("series", "latencies")}


@dataclass
class _Container:
    ident: int
    started: float
    ready_at: float
    in_flight: int = 0
    engine_queue: deque[int] = field(default_factory=deque)
    engine_busy: bool = False
    idle_since: float | None = None
    stopped: float | None = None
    listed: bool = False  # in the heap of containers with a free slot


def simulate(deployment: Deployment, traffic: Traffic, duration_s: float = 600.0, seed: int = 0,
             series_step_s: float = 1.0) -> Plan:
    if duration_s <= 0:
        raise ValueError("duration must be more than 0 seconds")
    return _Simulation(deployment, traffic, duration_s, random.Random(seed), series_step_s).run()


class _Simulation:
    def __init__(self, d: Deployment, traffic: Traffic, duration_s: float, rng: random.Random,
                 series_step_s: float) -> None:
        self.d, self.traffic, self.duration, self.rng, self.step = d, traffic, duration_s, rng, series_step_s
        self.events: list[tuple[float, int, Callable[[], None]]] = []
        self.order = itertools.count()
        self.now = 0.0
        self.queue: deque[int] = deque()  # request ids waiting for a slot
        self.containers: list[_Container] = []
        self.alive = 0
        self.starting = 0  # containers in their cold start
        self.free: list[int] = []  # heap of the idents of ready containers with a free slot (lazily cleaned)
        self.request_user: dict[int, int] = {}
        self.submitted: dict[int, float] = {}
        self.latencies: list[float] = []
        self.first_latency: dict[int, float] = {}
        self.user_busy: set[int] = set()
        self.user_alive: set[int] = set()
        self.ids = itertools.count()
        self.peak = 0
        self.last_scale_up = 0.0
        self.series: list[dict[str, float]] = []

    # -- the event loop
    def at(self, t: float, action: Callable[[], None]) -> None:
        heapq.heappush(self.events, (t, next(self.order), action))

    def run(self) -> Plan:
        for _ in range(self.d.min_containers):  # the warm pool is up before the traffic
            self._start_container(ready_at=0.0, started=0.0, on_demand=False)
        for t in self.traffic.change_times():
            if t < self.duration:
                self.at(t, self._apply_users)
        t = 0.0
        while t <= self.duration:
            self.at(t, self._sample)
            t += self.step
        while self.events:
            self.now, _, action = heapq.heappop(self.events)
            action()
        return self._plan()

    # -- users
    def _apply_users(self) -> None:
        wanted = self.traffic.users_at(self.now)
        for user in range(wanted):
            if user not in self.user_alive:
                self.user_alive.add(user)
                if user not in self.user_busy:
                    self._submit(user)
        for user in list(self.user_alive):
            if user >= wanted:
                self.user_alive.discard(user)  # stops after its current request

    def _submit(self, user: int) -> None:
        if self.now >= self.duration or user not in self.user_alive:
            return
        request = next(self.ids)
        self.request_user[request] = user
        self.submitted[request] = self.now
        self.user_busy.add(user)
        self.queue.append(request)
        if self.d.scale_up_delay_s > 0:
            self.at(self.now + self.d.scale_up_delay_s, self._dispatch)
        self._dispatch()

    def _finish(self, container: _Container, request: int) -> None:
        user = self.request_user[request]
        latency = self.now - self.submitted[request]
        self.latencies.append(latency)
        self.first_latency.setdefault(user, latency)
        self.user_busy.discard(user)
        container.in_flight -= 1
        self._list_if_free(container)
        if container.in_flight == 0:
            self._go_idle(container)
        self.at(self.now + self.rng.uniform(self.traffic.think_min_s, self.traffic.think_max_s),
                lambda: self._submit(user))
        self._dispatch()

    # -- routing and scaling
    def _list_if_free(self, container: _Container) -> None:
        if not container.listed and container.stopped is None and container.in_flight < self.d.max_inputs:
            container.listed = True
            heapq.heappush(self.free, container.ident)

    def _dispatch(self) -> None:
        # The oldest containers first: load packs onto few, so that a surplus idles out after the idle window.
        while self.queue and self.free:
            container = self.containers[self.free[0]]
            if container.stopped is None and container.in_flight < self.d.max_inputs:
                self._take(container, self.queue.popleft())
            if container.stopped is not None or container.in_flight >= self.d.max_inputs:
                heapq.heappop(self.free)
                container.listed = False
        missing = self._due() - self.starting * self.d.max_inputs
        while missing > 0 and self.alive < self.d.max_containers:
            self._start_container(ready_at=self.now + self.d.cold_start_s, started=self.now, on_demand=True)
            missing -= self.d.max_inputs

    def _due(self) -> int:
        """Queued inputs that have waited long enough to start a container for (the queue is in submission order)."""
        if self.d.scale_up_delay_s <= 0:
            return len(self.queue)
        due = 0
        for request in self.queue:
            if self.now - self.submitted[request] < self.d.scale_up_delay_s - 1e-9:
                break
            due += 1
        return due

    def _start_container(self, ready_at: float, started: float, on_demand: bool) -> None:
        container = _Container(ident=len(self.containers), started=started, ready_at=ready_at)
        self.containers.append(container)
        self.alive += 1
        self.starting += 1
        self.peak = max(self.peak, self.alive)
        if on_demand:
            self.last_scale_up = started
        self.at(ready_at, lambda: self._ready(container))

    def _ready(self, container: _Container) -> None:
        self.starting -= 1
        self._list_if_free(container)
        self._dispatch()
        if container.in_flight == 0:
            self._go_idle(container)

    def _take(self, container: _Container, request: int) -> None:
        container.in_flight += 1
        container.idle_since = None
        self.at(self.now + self.d.overhead_s / 2, lambda: self._enqueue_exec(container, request))

    def _enqueue_exec(self, container: _Container, request: int) -> None:
        container.engine_queue.append(request)
        if not container.engine_busy:
            self._exec_next(container)

    def _exec_next(self, container: _Container) -> None:
        if not container.engine_queue:
            container.engine_busy = False
            return
        container.engine_busy = True
        request = container.engine_queue.popleft()

        def done() -> None:
            self.at(self.now + self.d.overhead_s / 2, lambda: self._finish(container, request))
            self._exec_next(container)

        self.at(self.now + self.d.exec_s, done)

    def _go_idle(self, container: _Container) -> None:
        since = container.idle_since = self.now
        self.at(self.now + self.d.idle_s, lambda: self._maybe_stop(container, since))

    def _maybe_stop(self, container: _Container, since: float) -> None:
        if container.stopped is None and container.idle_since == since and self.alive > self.d.min_containers:
            container.stopped = self.now
            self.alive -= 1

    # -- measures
    def _sample(self) -> None:
        busy = sum(1 for c in self.containers if c.stopped is None and c.in_flight)
        self.series.append({"t": round(self.now, 6), "users": len(self.user_alive), "containers": self.alive,
                            "busy": busy, "queued": len(self.queue)})

    def _plan(self) -> Plan:
        seconds = sum(max(0.0, min(c.stopped if c.stopped is not None else self.duration, self.duration)
                          - min(c.started, self.duration)) for c in self.containers)
        per_min = self.d.gpu_price_per_hour / 60
        lat = sorted(self.latencies)
        return Plan(
            p50_s=statistics.median(lat) if lat else 0.0,
            p95_s=nearest_rank(lat, 0.95),
            cost_per_min=per_min * seconds / self.duration,
            peak_containers=self.peak,
            first_request_s=max(self.first_latency.values(), default=0.0),
            warm_cost_per_min=per_min * self.d.min_containers,
            requests=len(lat),
            last_scale_up_s=self.last_scale_up,
            series=self.series,
            latencies=self.latencies,
        )

