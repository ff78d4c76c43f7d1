"""How a message quotes a caller's value: its start and its length, never the whole of it (a value can be
megabytes, and an error answer that repeats it costs as much again). Used by every message that quotes a value:
the publisher's, the run inputs', the API's."""

from __future__ import annotations

import json

SHOWN_CHARS = 60


def cut(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text`, or its first `limit` characters and how long it is."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def quote(value: object, limit: int = SHOWN_CHARS) -> str:
    """`value` as JSON writes it (repr when JSON cannot; a container nested too deep to write: its type), cut."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        text = repr(value) if not isinstance(value, list | dict) else f"a {type(value).__name__}"
    return cut(text, limit)
