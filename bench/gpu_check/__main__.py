"""`python -m bench.gpu_check`: the engine on the GPU, bare and through the Modal snapshot hand-over (bench/README.md).

    python -m bench.gpu_check --prepare        # here, once: what the device needs, into .gpu_check/ and .whl/
    python -m bench.gpu_check --engine-archive .gpu_check/ComfyUI.tar.xz --out DIR   # on the device machine
    python -m bench.gpu_check --cpu --out DIR  # the same flow on the CPU, small (64x64, 1 step)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench.gpu_check.carry import MANIFEST, MIB, CarryError, prepare, tree_commit, unpack_engine
from bench.gpu_check.gpus import GpuSampler
from bench.gpu_check.phases import Setup, Workload, bare_phase, snapshot_phase
from bench.gpu_check.report import table, verdicts, write_json
from runtimes.engine.install import BundledEngine, EngineInstall, default_engine_home
from runtimes.modal.container.worker import container_has_gpu

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "bench" / "results" / "gpu_check"
MAKE_CHECKPOINT = REPO / "tests" / "support" / "make_random_sd15.py"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepare", action="store_true",
                        help="gather the engine archive and the missing wheels for the device machine, then stop")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where gpu_check.json, the engines' logs "
                        f"and one image per side go (default {DEFAULT_OUT})")
    parser.add_argument("--cpu", action="store_true", help="run everything on the CPU (default size 64, 1 step)")
    parser.add_argument("--size", type=int, help="image width and height (default 512; 64 with --cpu)")
    parser.add_argument("--steps", type=int, help="sampler steps (default 20; 1 with --cpu)")
    parser.add_argument("--warm-runs", type=int, help="runs after the first, per side (default 10; 2 with --cpu)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--engine-archive", type=Path, help="a ComfyUI packed by --prepare (on the device machine)")
    source.add_argument("--comfyui-path", type=Path, help="a ComfyUI folder")
    parser.add_argument("--engine-python", type=Path,
                        help="the Python that runs ComfyUI (default: this one with --engine-archive or "
                             "--comfyui-path, else the bundled engine's)")
    parser.add_argument("--engine-home", type=Path, default=default_engine_home(),
                        help="where the bundled engine is installed (default %(default)s)")
    args = parser.parse_args(argv)
    args.size = args.size or (64 if args.cpu else 512)
    args.steps = args.steps or (1 if args.cpu else 20)
    args.warm_runs = args.warm_runs if args.warm_runs is not None else (2 if args.cpu else 10)
    if args.size < 64 or args.size % 8:
        parser.error(f"--size {args.size}: give a multiple of 8, at least 64 (the latent is 1/8 of the image)")
    if args.steps < 1 or args.warm_runs < 1:
        parser.error("--steps and --warm-runs must be at least 1 (the warm runs are what the ratios compare)")
    return args


def resolve_install(args: argparse.Namespace, work: Path) -> tuple[EngineInstall, dict[str, Any]]:
    """The ComfyUI to run and the Python that runs it; unpacks an archive into `work`."""
    python = args.engine_python or Path(sys.executable)
    if args.engine_archive is not None:
        began = time.perf_counter()
        comfyui_dir = unpack_engine(args.engine_archive, work / "engine")
        unpacked = time.perf_counter()
        # Bytecode first, as an installed engine has it: else the first engine started pays for compiling ComfyUI
        # and the second does not, and the start times would compare that.
        subprocess.run([str(python), "-m", "compileall", "-q", "-j", "0", str(comfyui_dir)], check=True)
        return EngineInstall(comfyui_dir, python), {"source": str(args.engine_archive),
                                                    "unpack_s": unpacked - began,
                                                    "compile_s": time.perf_counter() - unpacked}
    if args.comfyui_path is not None:
        return EngineInstall(args.comfyui_path.resolve(), python), {"source": str(args.comfyui_path)}
    bundled = BundledEngine.under(args.engine_home)
    if not bundled.is_complete():
        raise CarryError(f"No installed engine at {bundled.root}: pass --engine-archive (on the device machine) or "
                         "--comfyui-path, or install the bundled engine (`python -m tests.setup`).")
    install = bundled.as_install()
    return (EngineInstall(install.comfyui_dir, args.engine_python or install.python),
            {"source": str(bundled.root)})


def find_checkpoint(install: EngineInstall, work: Path) -> tuple[Path, float | None]:
    """The tests' tiny random-weight SD1.5 checkpoint: their cached one when present, else synthesized into `work`
    by their recipe with the engine's Python (6-20 s). Returns it and the synthesis time (None: cached)."""
    from tests.support.paths import CHECKPOINT  # keyed by the engine's version: the same code makes the same file

    if CHECKPOINT.is_file():
        return CHECKPOINT, None
    out = work / "checkpoint.safetensors"
    print(f"synthesizing the random-weight SD1.5 checkpoint with {install.python}", flush=True)
    began = time.perf_counter()
    subprocess.run([str(install.python), str(MAKE_CHECKPOINT), str(install.comfyui_dir), str(out)], check=True)
    return out, time.perf_counter() - began


def gpu_summary(gpus: GpuSampler, cpu_only: bool) -> str:
    if gpus.skipped:
        found = gpus.skipped.removeprefix("skipped: ")
        return f"{found}{'; --cpu' if cpu_only else ''}"
    names = ", ".join(f"{g['name']} ({g['memory_total_mib']} MiB)" for g in gpus.gpus)
    return f"GPUs: {names}, driver {gpus.gpus[0]['driver']}{'; --cpu: not used' if cpu_only else ''}"


def check(args: argparse.Namespace) -> int:
    if args.cpu:
        # The app's device probe then finds no GPU (CPU engines); the snapshot side hides CUDA by itself.
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    workload = Workload(size=args.size, steps=args.steps, warm_runs=args.warm_runs)
    result: dict[str, Any] = {
        "workload": vars(workload), "gpu_present": container_has_gpu(),
        "commit": tree_commit(), "prepared": _read_json(MANIFEST), "python": platform.python_version(),
        "cpus": os.cpu_count(), "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    gpus = GpuSampler().start()
    result["gpu_summary"] = gpu_summary(gpus, args.cpu)
    print(result["gpu_summary"], flush=True)
    images: dict[str, bytes] = {}
    logs: dict[str, str] = {}
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        work = Path(tmp)
        try:
            install, result["engine"] = resolve_install(args, work)
            checkpoint, result["checkpoint_synth_s"] = find_checkpoint(install, work)
            setup = Setup(install=install, checkpoint=checkpoint, work=work, workload=workload, cpu_only=args.cpu)
            result["bare"], bare_images = bare_phase(setup, gpus)
            logs["engine-bare.log"] = result["bare"].pop("log")
            images.update({f"image-bare-{name}.png": data for name, data in list(bare_images.items())[:1]})
            write_json(args.out, result)  # a phase cut short by the caller's timeout still leaves this
            result["snapshot"], images["image-snapshot.png"] = snapshot_phase(setup, gpus)
            logs["engine-snapshot.log"] = result["snapshot"].pop("log")
        except Exception as exc:  # one run on a lent machine: keep everything it learnt, say where it stopped
            result["error"] = f"{type(exc).__name__}: {exc}"
            result["traceback"] = traceback.format_exc()[-4000:]
            logs.update({f"engine-{name}.log": str(path) for name, path in _engine_logs(work).items()})
        finally:
            gpus.stop()
            result["nvml"] = gpus.summary()
            result["total_s"] = time.perf_counter() - began
            result["checks"] = verdicts(result, cpu_only=args.cpu)
            _keep_files(args.out, logs, images)
            path = write_json(args.out, result)
    print(table(result))
    if "error" in result:
        print(f"\nSTOPPED: {result['error']}\n{result['traceback']}", file=sys.stderr)
    print(f"wrote {path} ({result['total_s']:.0f} s)")
    failed = "error" in result or any(status.startswith("FAILED") for _, status in result["checks"])
    return 1 if failed else 0


def _engine_logs(work: Path) -> dict[str, Path]:
    found = {"bare": work / "bare" / "logs" / "engine-0.log", "snapshot": work / "snapshot" / "comfyui" / "logs" /
             "engine.log"}
    return {name: path for name, path in found.items() if path.is_file()}


def _keep_files(out: Path, logs: dict[str, str], images: dict[str, bytes]) -> None:
    """The engines' logs and one image per side, beside the JSON (the work folder is deleted after)."""
    out.mkdir(parents=True, exist_ok=True)
    for name, source in logs.items():
        if Path(source).is_file():
            shutil.copyfile(source, out / name)
    for name, data in images.items():
        (out / name).write_bytes(data)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.prepare:
        try:
            manifest = prepare(args.engine_home, lambda message: print(message, flush=True))
        except CarryError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        carried = ", ".join(f"{name} {size / MIB:.1f} MiB" for name, size in manifest["carried_bytes"].items())
        print(f"ready to carry: {carried}; the working tree {manifest['tree_bytes'] / MIB:.1f} MiB; "
              f"{manifest['total_bytes'] / MIB:.1f} of {manifest['limit_bytes'] // MIB} MiB per device call")
        return 0
    try:
        return check(args)
    except CarryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
