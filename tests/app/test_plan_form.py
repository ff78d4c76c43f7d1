"""The Deploy tab's plan fields, checked into the sweep's workload and grid (app/planner/form.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.planner.form import PlanForm, PlanFormError, parse
from runtimes.modal.host.settings import GPU_PRICES

FORM = PlanForm(gpu="A10", exec_s=3.5, other_gpus="", overhead_s=0.9, cold_start_s=15, users=10, think="1-5",
                max_inputs_up_to=10, warm_pool_up_to=2, idle_windows="60, 300", max_containers=None,
                target_p95_s=10, budget_per_min=None)


def test_the_fields_become_the_workload_and_a_bounded_grid() -> None:
    workload, grid = parse(replace(FORM, other_gpus="h100=1.2, L4 = 5"), GPU_PRICES)
    assert dict(workload.exec_s_by_gpu) == {"A10": 3.5, "H100": 1.2, "L4": 5.0}
    assert (workload.overhead_s, workload.cold_start_s) == (0.9, 15)
    assert (workload.traffic.users, workload.traffic.think_min_s, workload.traffic.think_max_s) == (10, 1, 5)
    assert grid.max_inputs == (1, 2, 4, 8, 10) and grid.min_containers == (0, 1, 2)
    assert grid.idle_s == (60, 300) and grid.max_containers == 100  # no cap on the form: planned as 100


def test_no_exec_time_without_history_is_asked_for() -> None:
    with pytest.raises(PlanFormError) as caught:
        parse(replace(FORM, exec_s=None), GPU_PRICES)
    assert caught.value.problems == ["Exec time: this app has no run history to measure; type the seconds one run "
                                     "takes on the engine"]


def test_every_wrong_field_is_named_with_what_to_give() -> None:
    bad = replace(FORM, other_gpus="Z9=1, H100", think="5-1", idle_windows="1", users=0, warm_pool_up_to=50,
                  target_p95_s=None, budget_per_min=None, cold_start_s=None)
    with pytest.raises(PlanFormError) as caught:
        parse(bad, GPU_PRICES)
    text = "\n".join(caught.value.problems)
    for expected in ("'Z9=1' is not GPU=SECONDS", "'H100' is not GPU=SECONDS", "Think time: '5-1'",
                     "Idle windows: '1'", "Users: 0 is out of range", "Warm pool, up to: 50 is out of range",
                     "Goal: give a target p95", "Cold start (s): give a number"):
        assert expected in text
