"""The workflow templates the bundled engine ships (comfyui-workflow-templates, in its venv): real users' graphs,
the corpus the converter, the model sources and the editor tests are checked on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from publisher import detect_format
from tests.support.paths import ENGINE_HOME

_PATTERN = "*/venv/lib/python*/site-packages/comfyui_workflow_templates*/templates/*.json"


def ui_templates() -> list[tuple[Path, dict[str, Any]]]:
    """Each UI-format template (not the packages' index files), read, in file-name order of their paths."""
    found = [(path, json.loads(path.read_text())) for path in sorted(ENGINE_HOME.glob(_PATTERN))]
    return [(path, workflow) for path, workflow in found if detect_format(workflow) == "ui"]


def template(name: str) -> dict[str, Any]:
    """The template with this file name, read."""
    path = next(ENGINE_HOME.glob(_PATTERN.replace("*.json", name)))
    workflow: dict[str, Any] = json.loads(path.read_text())
    return workflow
