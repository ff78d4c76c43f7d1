"""Giving each run its own output folder inside the engine's output directory.

SaveImage lists its target folder on every save (slower as files pile up), and an identical
resubmission is served from the engine's cache without writing anything: a per-run
``filename_prefix`` of ``runs/<run id>/<original>`` fixes both and tells where a run's files are.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from .file_paths import PREFIX_INPUT, confine
from .node_schema import NodeCatalog
from .workflow import Workflow

_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
RUNS_FOLDER = "runs"


def check_run_id(run_id: str) -> None:
    # The id becomes a path segment in the engine's output folder: no separators, no dots.
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"run id must be 1-128 characters of A-Z, a-z, 0-9, '_' or '-', got {run_id!r}")


def run_folder(run_id: str) -> str:
    """The engine output subfolder (as ``/view`` expects it) where this run's files go."""
    check_run_id(run_id)
    return f"{RUNS_FOLDER}/{run_id}"


def _takes_prefix(class_type: str, catalog: NodeCatalog) -> bool:
    schema = catalog.get(class_type)
    if schema is None:
        return True  # unknown to this catalog: a literal string filename_prefix is still a prefix
    spec = schema.input(PREFIX_INPUT)
    return spec is not None and spec.type == "STRING"


def isolate_outputs(
    prompt: Mapping[str, Mapping[str, Any]] | Workflow, catalog: NodeCatalog, run_id: str
) -> dict[str, dict[str, Any]]:
    """A copy of ``prompt`` whose literal ``filename_prefix`` values live under ``runs/<run_id>/``.

    The prefix is confined first (``..``, absolute paths, backslashes and drive letters dropped): a caller's value
    for it (a text input bound to it) must not reach another run's folder.
    A prefix fed by a link (computed by another node) is left alone: it cannot be rewritten here.
    """
    folder = run_folder(run_id)
    nodes = prompt.nodes if isinstance(prompt, Workflow) else prompt
    result: dict[str, dict[str, Any]] = copy.deepcopy({str(k): dict(v) for k, v in nodes.items()})
    for node in result.values():
        inputs = node.get("inputs")
        if not isinstance(inputs, dict) or not isinstance(inputs.get(PREFIX_INPUT), str):
            continue
        if not _takes_prefix(str(node.get("class_type")), catalog):
            continue
        inputs[PREFIX_INPUT] = f"{folder}/{confine(inputs[PREFIX_INPUT])}"
    return result
