"""The login throttle's policy: free failures, growing lockouts, a success resets, bounded memory."""

from __future__ import annotations

from app.auth.throttle import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lockouts_grow_with_each_failure_past_the_free_ones() -> None:
    clock = Clock()
    throttle = LoginThrottle(free_failures=3, first_lockout_s=2, max_lockout_s=10, clock=clock)
    for _ in range(2):
        throttle.failed("10.0.0.1")
        assert throttle.retry_after("10.0.0.1") is None
    waits = []
    for _ in range(4):
        throttle.failed("10.0.0.1")
        waits.append(throttle.retry_after("10.0.0.1"))
        clock.now += waits[-1] or 0  # the lockout passes; the next attempt fails again
    assert waits == [2, 4, 8, 10]  # doubling, up to the cap
    assert throttle.retry_after("10.0.0.2") is None  # per address


def test_a_success_resets_the_count() -> None:
    throttle = LoginThrottle(free_failures=2, clock=Clock())
    throttle.failed("a")
    throttle.succeeded("a")
    throttle.failed("a")
    assert throttle.retry_after("a") is None


def test_memory_is_bounded_by_expiry_and_a_cap() -> None:
    clock = Clock()
    throttle = LoginThrottle(free_failures=1, first_lockout_s=1, forget_after_s=60, max_clients=3, clock=clock)
    for i in range(5):
        throttle.failed(f"10.0.0.{i}")
    assert throttle.tracked() == 3  # the oldest were forgotten first
    assert throttle.retry_after("10.0.0.4") == 1 and throttle.retry_after("10.0.0.0") is None
    clock.now += 120
    throttle.failed("10.0.0.9")
    assert throttle.tracked() == 1  # addresses quiet for long are dropped
