"""bench/v2_overhead, a few rounds on the session engine: its output's shape, and that the proxy side really went
through comfy-api-proxy (its own state counts the jobs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from comfy_low.models import Job

from tests.support.paths import REPO

RUNS, WARMUP = 3, 1


def test_a_short_run_measures_every_side_and_goes_through_the_proxy(tmp_path: Path, engine_url: str) -> None:
    out = tmp_path / "v2.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.v2_overhead", "--runs", str(RUNS), "--warmup", str(WARMUP),
         "--comfyui-url", engine_url, "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())

    sides = result["sides"]
    assert list(sides)[:2] == ["bare", "proxy"] and "typed" in sides
    for name, summary in sides.items():
        assert summary["n"] == RUNS and 0 < summary["p50_ms"] <= summary["p95_ms"]
        assert summary["polls_per_run"] >= 0
        # The CPU of what stands between the client and the engine: nothing for bare.
        assert ("server_cpu_ms_per_run" in summary) == (name != "bare")
    assert set(result["vs_bare"]) == set(sides) - {"bare"}
    for versus in result["vs_bare"].values():
        assert set(versus) == {"ratio_p50", "ratio_p95", "ratio_mean", "added_p50_ms", "added_p95_ms",
                               "added_mean_ms"}
    # Our /api/v2 is measured where the server serves it, and said to be skipped where it answers 404.
    for name in ("v2", "v2-app"):
        assert (name in sides) != (name in result["skipped"])
        if name in result["skipped"]:
            assert "answers 404" in result["skipped"][name]
            assert f"{name:<8} skipped: " in done.stdout
        else:
            Job.model_validate(result["last_jobs"][name])  # what our server answered, by the SDK's own model

    # Every proxy run (warm-up included) is a job in the proxy's own state, answered in the spec's shape.
    assert result["proxy"]["jobs_recorded"] == WARMUP + RUNS
    Job.model_validate(result["last_jobs"]["proxy"])
    assert result["settings"]["runs"] == RUNS and result["settings"]["external_engine"] is True
    assert "proxy" in done.stdout and "x p50" in done.stdout
