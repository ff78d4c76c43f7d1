"""`python launch.py plan ...` end to end in a subprocess: JSON out, a readable table, clear errors (exit 2), and
no data dir touched (the plan is a computation)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO

ISSUE_EXAMPLE = ["--exec-s", "3.5", "--overhead-s", "0.9", "--cold-start-s", "15", "--users", "10", "--think", "1-5",
                 "--max-inputs", "1", "--max-containers", "100"]


def plan(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "launch.py", "--data-dir", str(tmp_path / "data"), "plan", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def test_plan_prints_the_numbers_as_json(tmp_path: Path) -> None:
    done = plan(tmp_path, *ISSUE_EXAMPLE, "--gpu-price", "1.10", "--min-containers", "2", "--idle-s", "60",
                "--duration", "300", "--seed", "3", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for key in ("p50_s", "p95_s", "cost_per_min", "peak_containers", "first_request_s", "warm_cost_per_min"):
        assert isinstance(result[key], (int, float)), key
    assert 4 <= result["p50_s"] <= result["p95_s"]
    assert result["warm_cost_per_min"] == round(2 * 1.10 / 60, 6)
    assert "series" not in result
    assert not (tmp_path / "data").exists()


def test_plan_prices_a_gpu_from_the_table_and_adds_the_series_on_request(tmp_path: Path) -> None:
    done = plan(tmp_path, *ISSUE_EXAMPLE, "--gpu", "A10G", "--duration", "60", "--json", "--series")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["gpu_price_per_hour"] == 1.10 and result["prices_checked"]
    assert len(result["series"]) == 61 and {"t", "users", "containers", "busy", "queued"} <= set(result["series"][0])


def test_plan_without_json_prints_a_table(tmp_path: Path) -> None:
    done = plan(tmp_path, *ISSUE_EXAMPLE, "--gpu-price", "1.10", "--duration", "60")
    assert done.returncode == 0, done.stderr
    assert "p95 latency" in done.stdout and "$/min" in done.stdout


def test_plan_refuses_bad_values_with_what_to_fix(tmp_path: Path) -> None:
    for args, says in ((["--think", "5-1"], "MIN-MAX"), (["--think", "soon"], "--think takes MIN-MAX"),
                       (["--gpu", "NOT_A_GPU"], "pick one of"), (["--max-inputs", "0"], "max inputs"),
                       (["--min-containers", "200"], "min containers"), (["--step", "x"], "--step takes T:N"),
                       (["--duration", "0"], "duration"), (["--scale-up-delay-s", "-1"], "scale-up delay"),
                       (["--ramp-s", "-5"], "ramp"), (["--users", "-1"], "users")):
        price = [] if "--gpu" in args else ["--gpu-price", "1.10"]
        done = plan(tmp_path, *ISSUE_EXAMPLE, *price, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert says in done.stderr, (args, done.stderr)
    missing_price = plan(tmp_path, *ISSUE_EXAMPLE)
    assert missing_price.returncode == 2 and "--gpu" in missing_price.stderr


def test_plan_prices_from_a_table_given_with_prices_and_names_its_date(tmp_path: Path) -> None:
    table = tmp_path / "mine.json"
    table.write_text(json.dumps({"checked": "2026-11-30", "source": "my invoice", "usd_per_hour": {"A10": 0.6}}))
    done = plan(tmp_path, *ISSUE_EXAMPLE, "--gpu", "A10G", "--prices", str(table), "--duration", "60", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["gpu_price_per_hour"] == 0.6
    assert result["prices_checked"].startswith("2026-11-30, my invoice") and str(table) in result["prices_checked"]
    builtin = json.loads(plan(tmp_path, *ISSUE_EXAMPLE, "--gpu", "A10G", "--duration", "60", "--json").stdout)
    assert builtin["gpu_price_per_hour"] == 1.10 and "modal.com/pricing" in builtin["prices_checked"]
    assert result["cost_per_min"] < builtin["cost_per_min"]
    assert not (tmp_path / "data").exists()


def test_plan_uses_the_data_dirs_table_by_default(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "gpu_prices.json").write_text(json.dumps(
        {"checked": "2026-10-01", "source": "edited in the studio", "usd_per_hour": {"L4": 2.0}}))
    done = plan(tmp_path, *ISSUE_EXAMPLE, "--gpu", "l4", "--duration", "60", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["gpu_price_per_hour"] == 2.0 and result["prices_checked"].startswith("2026-10-01, edited")
    table = plan(tmp_path, *ISSUE_EXAMPLE, "--gpu", "l4", "--duration", "60")
    assert "2026-10-01, edited in the studio" in table.stdout


def test_plan_refuses_a_bad_price_table_naming_the_file_and_the_value(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    in_data_dir = tmp_path / "data" / "gpu_prices.json"
    in_data_dir.write_text(json.dumps({"checked": "2026-10-01", "source": "s", "usd_per_hour": {"L4": -2}}))
    done = plan(tmp_path, *ISSUE_EXAMPLE, "--gpu", "L4")
    assert done.returncode == 2 and str(in_data_dir) in done.stderr and "L4" in done.stderr and "-2" in done.stderr
    assert plan(tmp_path, *ISSUE_EXAMPLE, "--gpu-price", "1.1", "--duration", "60").returncode == 0  # not used
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{")
    done = plan(tmp_path, *ISSUE_EXAMPLE, "--gpu", "L4", "--prices", str(corrupt))
    assert done.returncode == 2 and str(corrupt) in done.stderr and "not valid JSON" in done.stderr
    done = plan(tmp_path, *ISSUE_EXAMPLE, "--gpu", "L4", "--prices", str(tmp_path / "missing.json"))
    assert done.returncode == 2 and "no such file" in done.stderr
