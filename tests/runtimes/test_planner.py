"""The serverless planner: the autoscaler's mechanics, and Modal's published ComfyUI load test on A10G
(https://modal.com/blog/scaling-comfyui: ~4.4 s per image of which ~3.5 s on the GPU, ~15 s cold start,
$1.10/h, 10 users thinking 1-5 s)."""

from __future__ import annotations

import pytest

from runtimes.modal.host.settings import GPU_PRICES
from runtimes.planner.autoscaler import Deployment, Traffic, simulate
from runtimes.planner.prices import gpu_price, prices_checked

A10G = 1.10


def modal_load_test(**settings: float) -> Deployment:
    return Deployment(exec_s=3.5, overhead_s=0.9, cold_start_s=15, gpu_price_per_hour=A10G, **settings)


def within(value: float, target: float, tolerance: float = 0.15) -> bool:
    return abs(value - target) <= tolerance * target


# -- the published regimes

def test_one_container_per_input_gives_the_engine_time_on_about_ten_gpus() -> None:
    plan = simulate(modal_load_test(max_inputs=1), Traffic(10, 1, 5), duration_s=600, seed=1)
    assert within(plan.p50_s, 4.4), plan.summary()
    assert within(plan.cost_per_min, 0.18), plan.summary()
    assert plan.peak_containers == 10


def test_ten_inputs_on_one_container_queue_behind_one_engine() -> None:
    plan = simulate(modal_load_test(max_inputs=10), Traffic(10, 1, 5), duration_s=600, seed=1)
    assert within(plan.p50_s, 32), plan.summary()
    assert within(plan.cost_per_min, 0.02), plan.summary()
    assert plan.peak_containers == 1


def test_a_warm_pool_of_five_takes_about_ten_seconds_off_the_first_requests() -> None:
    cold = simulate(modal_load_test(max_inputs=1), Traffic(10, 1, 5), duration_s=600, seed=1)
    warm = simulate(modal_load_test(max_inputs=1, min_containers=5), Traffic(10, 1, 5), duration_s=600, seed=1)
    assert within(cold.first_request_s - warm.first_request_s, 10), (cold.summary(), warm.summary())
    assert within(warm.warm_cost_per_min, 0.09)
    assert cold.warm_cost_per_min == 0


def test_ramping_to_a_hundred_users_peaks_near_sixty_containers_and_settles() -> None:
    # Modal saw a peak of 62 that settled in about a minute; how close this comes is in the report (no tighter).
    plan = simulate(modal_load_test(max_inputs=1), Traffic(100, 1, 5, ramp_s=60), duration_s=600, seed=1)
    assert 50 <= plan.peak_containers <= 85, plan.summary()
    busy_after_ramp = [s["busy"] for s in plan.series if s["t"] >= 120]
    assert 50 <= sum(busy_after_ramp) / len(busy_after_ramp) <= 70  # Little's law: 100 x 4.4 / (4.4 + 3) = 59.5


def test_an_autoscaler_that_lets_short_waits_pass_scales_less_and_stops_scaling_after_the_ramp() -> None:
    # Started for every input that finds no free slot, the pool covers the peak of the in-flight count over each
    # idle window and keeps restarting containers; an input that waits a second or two for a slot does not start
    # one, and the pool settles when the ramp ends (Modal: 62 containers, settled in about a minute).
    traffic = Traffic(100, 1, 5, ramp_s=60)
    instant = simulate(modal_load_test(max_inputs=1), traffic, duration_s=600, seed=1)
    damped = simulate(modal_load_test(max_inputs=1, scale_up_delay_s=2), traffic, duration_s=600, seed=1)
    assert damped.peak_containers < instant.peak_containers
    assert damped.last_scale_up_s <= 60 + 15 < instant.last_scale_up_s
    assert damped.cost_per_min < instant.cost_per_min


# -- the mechanics

def test_an_input_waiting_less_than_the_scale_up_delay_starts_no_container() -> None:
    for delay, containers in ((0, 2), (3, 1)):
        d = Deployment(exec_s=2, overhead_s=0, cold_start_s=5, gpu_price_per_hour=1, min_containers=1,
                       scale_up_delay_s=delay)
        plan = simulate(d, Traffic(2, 100, 100), duration_s=20, seed=0)
        assert plan.peak_containers == containers

def test_a_cold_start_delays_only_the_first_request() -> None:
    d = Deployment(exec_s=2, overhead_s=0, cold_start_s=15, gpu_price_per_hour=1)
    plan = simulate(d, Traffic(1, 1, 1), duration_s=60, seed=0)
    assert plan.latencies[0] == pytest.approx(17)
    assert plan.latencies[1:] and all(x == pytest.approx(2) for x in plan.latencies[1:])
    assert plan.first_request_s == pytest.approx(17)


def test_the_warm_pool_serves_at_once() -> None:
    d = Deployment(exec_s=2, overhead_s=0, cold_start_s=15, gpu_price_per_hour=1, min_containers=1)
    plan = simulate(d, Traffic(1, 1, 1), duration_s=60, seed=0)
    assert plan.first_request_s == pytest.approx(2)


def test_an_idle_container_stops_after_the_idle_window_but_the_warm_pool_stays() -> None:
    traffic = Traffic(1, 1, 1, steps=((10, 0),))  # one user, gone at 10 s
    for min_containers, left in ((0, 0), (1, 1)):
        d = Deployment(exec_s=2, overhead_s=0, cold_start_s=0, gpu_price_per_hour=60, idle_s=30,
                       min_containers=min_containers)
        plan = simulate(d, traffic, duration_s=100, seed=0)
        last_done = 10 + 2  # the request submitted before 10 s ends by 12 s
        alive = {s["t"]: s["containers"] for s in plan.series}
        assert alive[last_done + 29] == 1
        assert alive[last_done + 31] == left
        assert plan.cost_per_min < 1 if left == 0 else plan.cost_per_min == pytest.approx(1)


def test_max_containers_caps_the_scale_up_and_inputs_wait() -> None:
    d = Deployment(exec_s=2, overhead_s=0, cold_start_s=0, gpu_price_per_hour=1, max_containers=3)
    plan = simulate(d, Traffic(10, 0, 0), duration_s=60, seed=0)
    assert plan.peak_containers == 3
    assert max(s["containers"] for s in plan.series) == 3
    assert plan.p50_s > 2  # waiting for a free container


def test_one_container_serializes_execution_but_not_the_overhead() -> None:
    d = Deployment(exec_s=2, overhead_s=1, cold_start_s=0, gpu_price_per_hour=1, max_inputs=4, min_containers=1)
    plan = simulate(d, Traffic(4, 100, 100), duration_s=50, seed=0)
    # 4 inputs at once: each spends 0.5 s in, then the engine runs them one by one (2 s each), then 0.5 s out.
    assert sorted(plan.latencies) == pytest.approx([3, 5, 7, 9])
    assert plan.peak_containers == 1


def test_a_container_with_a_free_slot_takes_the_input_before_a_new_one_starts() -> None:
    d = Deployment(exec_s=1, overhead_s=0, cold_start_s=10, gpu_price_per_hour=1, max_inputs=2)
    plan = simulate(d, Traffic(2, 0, 0), duration_s=30, seed=0)
    assert plan.peak_containers == 1


def test_a_ramp_adds_users_over_time_and_a_step_changes_their_number() -> None:
    traffic = Traffic(10, 1, 1, ramp_s=10, steps=((20, 3),))
    assert [traffic.users_at(t) for t in (0, 4.5, 9.99, 15, 20, 30)] == [1, 5, 10, 10, 3, 3]
    d = Deployment(exec_s=1, overhead_s=0, cold_start_s=0, gpu_price_per_hour=1)
    users = {s["t"]: s["users"] for s in simulate(d, traffic, duration_s=40, seed=0).series}
    assert users[5] == 6 and users[15] == 10 and users[25] == 3


def test_the_same_seed_gives_the_same_plan_and_another_seed_another() -> None:
    d = modal_load_test(max_inputs=1)
    one, again = (simulate(d, Traffic(10, 1, 5), duration_s=120, seed=7) for _ in range(2))
    other = simulate(d, Traffic(10, 1, 5), duration_s=120, seed=8)
    assert one.latencies == again.latencies and one.series == again.series
    assert one.latencies != other.latencies


@pytest.mark.parametrize("bad", [dict(exec_s=0), dict(max_inputs=0), dict(max_containers=0),
                                 dict(min_containers=5, max_containers=2), dict(idle_s=-1),
                                 dict(gpu_price_per_hour=-1), dict(scale_up_delay_s=-1)])
def test_bad_settings_are_refused_with_what_is_wrong(bad: dict) -> None:
    settings = dict(exec_s=1, overhead_s=0, cold_start_s=0, gpu_price_per_hour=1) | bad
    with pytest.raises(ValueError, match=r"must be"):
        Deployment(**settings)


def test_bad_traffic_is_refused() -> None:
    with pytest.raises(ValueError, match="MIN-MAX"):
        Traffic(1, 5, 1)
    with pytest.raises(ValueError, match="users"):
        Traffic(-1, 1, 5)


# -- the price table

def test_the_planner_prices_a_gpu_from_the_deploy_settings_table_by_name() -> None:
    assert gpu_price("a10g") == gpu_price("A10") == pytest.approx(A10G)  # the load test's name, and today's
    assert gpu_price("H100") == GPU_PRICES["H100"]
    assert "modal.com/pricing" in prices_checked()
    with pytest.raises(ValueError, match=r"pick one of .*A10"):
        gpu_price("NOT_A_GPU")
