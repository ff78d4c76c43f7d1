"""Paths and loaders for the publisher tests' own workflow fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from publisher import Workflow, load_workflow

FIXTURES = Path(__file__).parent / "fixtures"
WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


def fixture_json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def fixture_workflow(name: str) -> Workflow:
    return load_workflow(FIXTURES / name)


def shipped_workflow(name: str) -> Workflow:
    return load_workflow(WORKFLOWS / name)
