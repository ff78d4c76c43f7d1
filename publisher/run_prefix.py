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
from .workflow import Workflow, is_link

_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
RUNS_FOLDER = "runs"
# A prefix computed by other nodes is confined on the engine, by its own string nodes: every '..' and backslash
# becomes '_' (no two dots are left side by side), then the run's folder goes in front.
CONFINE_NODES = ("RegexReplace", "StringConcatenate")
UNSAFE_IN_PREFIX = r"\.\.|\\"


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
    for it (a text input bound to it) must not reach another run's folder. A prefix fed by a link (computed by
    other nodes, perhaps from a caller's text) goes through two nodes added on the engine that do the same; an
    engine without them (older than ComfyUI 0.3.4x) keeps the link as it is.
    """
    folder = run_folder(run_id)
    nodes = prompt.nodes if isinstance(prompt, Workflow) else prompt
    result: dict[str, dict[str, Any]] = copy.deepcopy({str(k): dict(v) for k, v in nodes.items()})
    confining = all(catalog.get(name) is not None for name in CONFINE_NODES)
    for node_id, node in list(result.items()):
        inputs = node.get("inputs")
        if not isinstance(inputs, dict) or not _takes_prefix(str(node.get("class_type")), catalog):
            continue
        prefix = inputs.get(PREFIX_INPUT)
        if isinstance(prefix, str):
            inputs[PREFIX_INPUT] = f"{folder}/{confine(prefix)}"
        elif is_link(prefix) and confining:
            inputs[PREFIX_INPUT] = _confined_on_engine(result, node_id, prefix, folder)
    return result


def _confined_on_engine(prompt: dict[str, dict[str, Any]], node_id: str, link: list[Any], folder: str) -> list[Any]:
    """Adds the nodes that confine a computed prefix under `folder`; returns the link to their result."""
    cleaned, joined = f"{node_id}:prefix-cleaned", f"{node_id}:prefix-in-run-folder"
    prompt[cleaned] = {"class_type": "RegexReplace",
                       "inputs": {"string": list(link), "regex_pattern": UNSAFE_IN_PREFIX, "replace": "_"}}
    prompt[joined] = {"class_type": "StringConcatenate",
                      "inputs": {"string_a": f"{folder}/", "string_b": [cleaned, 0], "delimiter": ""}}
    return [joined, 0]
