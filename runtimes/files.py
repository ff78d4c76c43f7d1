"""File names that came from outside (uploads, engine outputs), made safe to store and to hand to an engine."""

from __future__ import annotations

import re

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(name: str, fallback: str = "file") -> str:
    """The last path segment (either slash), reduced to characters no shell, URL or engine trips on; no leading
    dot (no hidden files), at most 120 characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return _SAFE_NAME.sub("_", base).strip("._")[:120] or fallback
