"""Graphs the editor sent with "Publish…", kept as files until the studio opens them.

A draft is persisted before the editor is told where to go (nothing is lost if the studio tab is closed or the app
restarts), named by a random id that is its only key, and pruned by age and count so that the editor's button
cannot fill the disk.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_AGE_S = 7 * 86400
MAX_DRAFTS = 200
_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


@dataclass(frozen=True)
class Draft:
    id: str
    workflow: dict[str, Any]  # the UI format, as the editor serialized it
    prompt: dict[str, Any] | None  # what the editor's graphToPrompt() would queue
    name: str  # the editor's file name for it, if any


class DraftStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def save(self, workflow: dict[str, Any], prompt: dict[str, Any] | None, name: str) -> Draft:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.prune()
        draft = Draft(id=secrets.token_urlsafe(18), workflow=workflow, prompt=prompt, name=name)
        partial = self.folder / f"{draft.id}.json.partial"
        partial.write_text(json.dumps({"workflow": workflow, "prompt": prompt, "name": name}))
        partial.rename(self.folder / f"{draft.id}.json")  # whole or absent: never half a draft
        return draft

    def load(self, draft_id: str) -> Draft | None:
        """The draft, or None for an id that is malformed, unknown or pruned (the id never names a path)."""
        if not _ID.fullmatch(draft_id):
            return None
        try:
            data = json.loads((self.folder / f"{draft_id}.json").read_text())
        except (OSError, ValueError):
            return None
        return Draft(id=draft_id, workflow=data["workflow"], prompt=data.get("prompt"), name=data.get("name", ""))

    def prune(self) -> None:
        """Drop drafts older than a week, and the oldest past MAX_DRAFTS - 1 (room for one more)."""
        aged = sorted(((_mtime(path), path) for path in self.folder.glob("*.json*")), reverse=True)
        cutoff = time.time() - MAX_AGE_S
        for index, (mtime, path) in enumerate(aged):
            if index >= MAX_DRAFTS - 1 or mtime < cutoff:
                path.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # pruned by another request meanwhile
        return 0.0
