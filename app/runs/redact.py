"""Absolute server paths out of what a run shows its callers: engine errors and tracebacks name the files of the
server (its user's home, the install, temp folders), which are none of a caller's business and help an attacker.
The run's record keeps the full text (the studio shows it to the admin)."""

from __future__ import annotations

import re
from typing import Any

SHOWN_AS = "<server>/"
_SEGMENT = r"[^\s/\\\"'<>|:,;()\[\]{}]+"
# /home/u/ComfyUI/nodes.py (two segments at least, not part of a URL or a relative path), C:\x\y, \\host\share
_POSIX = re.compile(rf"(?<![\w.~:/\\-])(?:/{_SEGMENT})+/({_SEGMENT})?")
_WINDOWS = re.compile(rf"(?<![\w])(?:[A-Za-z]:|\\\\{_SEGMENT})(?:[\\/]{_SEGMENT})*[\\/]({_SEGMENT})?")


def scrub_paths(value: Any) -> Any:
    """`value` (a str, or lists and dicts of them) with each absolute path cut to its file name."""
    if isinstance(value, str):
        return _POSIX.sub(_keep_name, _WINDOWS.sub(_keep_name, value))
    if isinstance(value, dict):
        return {key: scrub_paths(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_paths(item) for item in value]
    return value


def _keep_name(match: re.Match[str]) -> str:
    return SHOWN_AS + (match.group(1) or "")
