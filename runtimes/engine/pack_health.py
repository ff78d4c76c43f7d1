"""Did each pack load? An engine that cannot import a pack still starts and serves (ComfyUI logs the error and goes
on), and no endpoint says so: the pack's nodes are simply absent from /object_info. So a pack's state comes from
the engine's log of its last start (ComfyUI's "Import times for custom nodes" summary and the traceback it logs
before "Cannot import …"), and its node types from /object_info ("python_module": "custom_nodes.<folder>")."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

START_MARK = "=== engine start "  # written by EngineProcess before each start
FAILED_MARKS = ("(IMPORT FAILED)", "(PRESTARTUP FAILED)")
_READ_BYTES = 2 * 2**20
MAX_LINES = 40


@dataclass(frozen=True)
class PackState:
    state: str  # "loaded", "failed", or "not loaded" (installed after the engine's last start)
    node_types: tuple[str, ...] = ()
    log: tuple[str, ...] = field(default_factory=tuple)  # the log lines about a failed pack


def last_start(log_path: Path) -> str:
    """The engine log of its last start (empty when it never started)."""
    try:
        with open(log_path, "rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(0, size - _READ_BYTES))
            text = log.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    start = text.rfind(START_MARK)
    return text[start:] if start >= 0 else text


def node_types_by_pack(object_info: Mapping[str, Any]) -> dict[str, list[str]]:
    """{custom_nodes folder: its node types} from /object_info."""
    found: dict[str, list[str]] = {}
    for class_type, schema in object_info.items():
        module = schema.get("python_module") if isinstance(schema, Mapping) else None
        if isinstance(module, str) and module.startswith("custom_nodes."):
            found.setdefault(module.removeprefix("custom_nodes.").split(".", 1)[0], []).append(class_type)
    return found


def pack_states(names: Iterable[str], log_text: str,
                object_info: Mapping[str, Any] | None = None) -> dict[str, PackState]:
    lines = log_text.splitlines()
    nodes = node_types_by_pack(object_info or {})
    states = {}
    for name in names:
        summary = [line for line in lines if _about(line, name) and "seconds" in line]
        failed = any(mark in line for line in summary for mark in FAILED_MARKS)
        if failed:
            states[name] = PackState("failed", log=tuple(failure_lines(lines, name)))
        elif nodes.get(name) or summary:
            states[name] = PackState("loaded", tuple(sorted(nodes.get(name, ()))))
        else:
            states[name] = PackState("not loaded")
    return states


def failure_lines(lines: list[str], name: str) -> list[str]:
    """The log lines about pack `name`: each line naming its folder, with the traceback logged just before
    ComfyUI's "Cannot import … module for custom nodes" line."""
    picked: list[int] = []
    for index, line in enumerate(lines):
        if not _about(line, name):
            continue
        if "Cannot import" in line or "Failed to execute startup-script" in line:
            start = index
            while start > 0 and index - start < MAX_LINES and not lines[start].startswith("Traceback"):
                start -= 1
            picked.extend(range(start if lines[start].startswith("Traceback") else index, index + 1))
        else:
            picked.append(index)
    return [lines[i] for i in sorted(set(picked))][-MAX_LINES:]


def _about(line: str, name: str) -> bool:
    """Does the log line name the folder custom_nodes/<name> (not custom_nodes/<name>-other)?"""
    marker = f"custom_nodes{os.sep}{name}"
    at = line.find(marker)
    while at >= 0:
        end = at + len(marker)
        if end == len(line) or not (line[end].isalnum() or line[end] in "_-."):
            return True
        at = line.find(marker, end)
    return False
