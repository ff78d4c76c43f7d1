"""`deploy SLUG --target runpod --serve-locally --port P`: the generated handler.py under the runpod SDK's own local
API server (`--rp_serve_api`: /run, /runsync, /status/{id}, /stream/{id}), against an engine on this machine, so a
user tries their endpoint before paying for it. The handler starts its own engine from the local install (the
bundled one, or --comfyui-path), with its base folder under the data dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from publisher import AppSpec
from publisher.apply import FILE_TYPES
from runtimes.engine.install import EngineInstall

STOP_TIMEOUT_S = 20.0
# What makes the SDK talk to RunPod's platform instead of serving locally (they are only set on a real worker).
PLATFORM_ENV = ("RUNPOD_WEBHOOK_GET_JOB", "RUNPOD_WEBHOOK_POST_OUTPUT", "RUNPOD_WEBHOOK_POST_STREAM",
                "RUNPOD_WEBHOOK_PING", "RUNPOD_POD_ID", "RUNPOD_AI_API_KEY", "RUNPOD_REALTIME_PORT")


def handler_env(directory: Path, install: EngineInstall, base_dir: Path, models_dir: Path) -> dict[str, str]:
    """The environment the generated handler reads its paths from (COMFY_PUBLISHER_*, as on a worker): the local
    engine, a base folder of its own, and the models the local engines use (a missing one with a source is fetched
    there at start, as a worker fetches it onto its volume)."""
    env = {k: v for k, v in os.environ.items() if k not in PLATFORM_ENV}
    models_file = directory / "models.json"
    return {**env, "PYTHONUNBUFFERED": "1",
            "COMFY_PUBLISHER_COMFYUI_DIR": str(install.comfyui_dir), "COMFY_PUBLISHER_PYTHON": str(install.python),
            "COMFY_PUBLISHER_BASE_DIR": str(base_dir), "COMFY_PUBLISHER_SPEC_FILE": str(directory / "app_spec.json"),
            "COMFY_PUBLISHER_MODELS_DIR": str(models_dir),
            "COMFY_PUBLISHER_MODELS_FILE": str(models_file) if models_file.is_file() else ""}


def handler_command(directory: Path, host: str, port: int) -> list[str]:
    return [sys.executable, str(directory / "handler.py"), "--rp_serve_api", "--rp_api_host", host,
            "--rp_api_port", str(port)]


def example_inputs(spec: AppSpec) -> dict[str, Any]:
    """A typed request's inputs: each published input with its default (a file as a data: URL placeholder)."""
    out: dict[str, Any] = {}
    for item in spec.inputs:
        if item.type in FILE_TYPES:
            out[item.name] = "data:image/png;base64,<BASE64>"
        else:
            out[item.name] = item.default
    return out


def how_to_call(url: str, spec: AppSpec) -> str:
    typed = json.dumps({"input": {"inputs": example_inputs(spec)}})
    uploads = [i.name for i in spec.inputs if i.type in FILE_TYPES]
    images = ', "images": [{"name": "input.png", "image": "<BASE64 or data: URL>"}]' if uploads else ""
    return "\n".join([
        f"RunPod's local API server: {url} (docs at {url}/docs). Ctrl-C stops it.",
        "The app's typed inputs (RunPod's {\"input\": ...} envelope):",
        f"  curl -s -X POST {url}/runsync -H 'Content-Type: application/json' -d '{typed}'",
        "worker-comfyui's shape: the app's own API-format workflow (app_spec.json's \"workflow\"), only its "
        "published inputs changed" + (f"; an upload is named as the value of its input ({', '.join(uploads)})"
                                      if uploads else "") + ":",
        f"  curl -s -X POST {url}/runsync -H 'Content-Type: application/json' "
        f"-d '{{\"input\": {{\"workflow\": {{...}}{images}}}}}'",
        f"Or queue with POST {url}/run (answers an id), then POST {url}/status/ID: locally /status is a POST, and it "
        "runs the job inside that call.",
    ])


def serve(directory: Path, spec: AppSpec, install: EngineInstall, base_dir: Path, models_dir: Path, *, host: str,
          port: int) -> int:
    """Run the handler until it exits or Ctrl-C; returns its exit status (0 after Ctrl-C)."""
    base_dir.mkdir(parents=True, exist_ok=True)
    models_dir.mkdir(parents=True, exist_ok=True)
    url = f"http://{host}:{port}"
    print(f"Starting the handler of {directory} (engine: {install.comfyui_dir}; base folder {base_dir}; models "
          f"{models_dir})", flush=True)
    print(how_to_call(url, spec), flush=True)
    proc = subprocess.Popen(handler_command(directory, host, port), cwd=directory,
                            env=handler_env(directory, install, base_dir, models_dir), stdin=subprocess.DEVNULL)
    try:
        return proc.wait()
    except KeyboardInterrupt:  # the handler stops its server and its engine on SIGINT (a terminal's Ctrl-C sends
        proc.send_signal(signal.SIGINT)  # it to both already; a second one is harmless)
        try:
            return 0 if proc.wait(STOP_TIMEOUT_S) in (0, -signal.SIGINT, 130) else proc.returncode
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            return 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait()
