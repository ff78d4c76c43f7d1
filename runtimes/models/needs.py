"""The model files an app or a workflow needs, each with where it goes, where it comes from and whether the
engines' models folder has it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from publisher.model_needs import hash_of
from publisher.models import ModelRef

from .store import ModelPathError, present_path, target_path


@dataclass(frozen=True)
class NeededModel:
    folder: str
    filename: str
    source: str | None  # hf://owner/repo/path[@rev], or None: put it there by hand
    sha256: str | None  # declared by the workflow file
    present: bool
    nodes: tuple[str, ...]  # the nodes that load it

    @property
    def key(self) -> str:
        return f"{self.folder}/{self.filename}"

    def hint(self) -> str:
        """What to do about it, when it is missing."""
        if self.folder == "unknown":
            return (f"no known folder for {self.filename} (a custom node's input): put it where that node pack "
                    "reads it from, under the engine's models folder")
        if self.source is None:
            return (f"no known source: put it in models/{self.folder}/{self.filename} yourself, or give "
                    f"--source {self.filename}=hf://owner/repo/path/to/file")
        return f"fetch it from {self.source}"


def needed_models(refs: Iterable[ModelRef], models_dir: Path,
                  hashes: Mapping[str, str] | None = None) -> list[NeededModel]:
    """One entry per file (several nodes may load the same one), in the workflow's order."""
    grouped: dict[tuple[str, str], list[ModelRef]] = {}
    for ref in refs:
        grouped.setdefault((ref.folder, ref.filename), []).append(ref)
    needs = []
    for (folder, filename), same in grouped.items():
        try:
            target_path(models_dir, folder, filename)
            present = present_path(models_dir, folder, filename) is not None
        except ModelPathError:
            present = False
        source = next((r.source for r in same if r.source), None)
        needs.append(NeededModel(folder, filename, source, hash_of(same[0], hashes or {}), present,
                                 tuple(r.node for r in same)))
    return needs
