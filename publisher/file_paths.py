"""File names inside a workflow: the engine reads them from its input folder (LoadImage and the like) or writes
under its output folder (``filename_prefix``). A name with ``..``, an absolute path or a drive letter would reach
outside those folders (another run's files, the server's own), so publishing refuses such literals and a run's
prefix is confined to the run's folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .node_schema import NodeCatalog
from .quoting import quote
from .workflow import Workflow

PREFIX_INPUT = "filename_prefix"
# The engine's loaders, known by name too, for a catalog that lacks them (a custom build, a stale cache).
LOADER_INPUTS = {("LoadImage", "image"), ("LoadImageMask", "image"), ("LoadVideo", "file"), ("LoadAudio", "audio")}
_DRIVE = re.compile(r"^[A-Za-z]:")


def escapes_folder(name: str) -> bool:
    """Whether a file name relative to an engine folder could point outside it."""
    text = name.replace("\\", "/")
    return text.startswith("/") or bool(_DRIVE.match(text)) or ".." in text.split("/")


def confine(name: str, fallback: str = "ComfyUI") -> str:
    """``name`` as a path that stays inside its folder: separators made ``/``, a drive letter, empty, ``.`` and
    ``..`` segments dropped (``../other/x`` -> ``other/x``, ``C:\\x`` -> ``x``)."""
    text = _DRIVE.sub("", name.replace("\\", "/"))
    parts = [part for part in text.split("/") if part not in ("", ".", "..")]
    return "/".join(parts) or fallback


def names_a_file(class_type: str, input_name: str, catalog: NodeCatalog) -> bool:
    """Whether the engine takes this input as a file name: a save prefix, a loader's file, a list of files (a
    COMBO) or an upload widget."""
    if input_name == PREFIX_INPUT or (class_type, input_name) in LOADER_INPUTS:
        return True
    schema = catalog.get(class_type)
    spec = schema.input(input_name) if schema is not None else None
    return spec is not None and (spec.type == "COMBO" or spec.image_upload or spec.upload is not None)


def path_problems(prompt: Workflow | Mapping[str, Mapping[str, Any]], catalog: NodeCatalog) -> list[str]:
    """One line per literal file name that leaves its folder, naming the node and the input."""
    nodes = prompt.nodes if isinstance(prompt, Workflow) else prompt
    problems = []
    for node_id, node in nodes.items():
        class_type = str(node.get("class_type"))
        for input_name, value in (node.get("inputs") or {}).items():
            if isinstance(value, str) and escapes_folder(value) and names_a_file(class_type, input_name, catalog):
                folder = "output" if input_name == PREFIX_INPUT else "input"
                problems.append(f"node {node_id} ({class_type}), input '{input_name}': {quote(value)} leaves the "
                                f"engine's {folder} folder; use a name inside it (no '..', no absolute path or "
                                "drive letter)")
    return problems
