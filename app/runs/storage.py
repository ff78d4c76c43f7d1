"""Files the app keeps: run outputs and uploaded inputs, under the data dir, never outside it."""

from __future__ import annotations

import contextlib
from pathlib import Path


def resolve_inside(root: Path, relative: str) -> Path | None:
    """`root/relative` if it stays inside root (no .., no absolute path, no symlink escape), else None."""
    if "\x00" in relative:
        return None
    root = root.resolve()
    candidate = (root / relative).resolve()
    return candidate if candidate.is_relative_to(root) and candidate != root else None


def write_file(root: Path, relative: str, data: bytes) -> Path:
    """Write `root/relative` whole or not at all: a failed write (a full disk) raises and leaves no file behind."""
    target = resolve_inside(root, relative)
    if target is None:
        raise ValueError(f"refusing to write outside {root}: {relative!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        partial.write_bytes(data)
        partial.replace(target)  # readers never see half a file
    except BaseException:
        with contextlib.suppress(OSError):  # the write's own error is the one to report
            partial.unlink(missing_ok=True)
        raise
    return target


def remove_file(root: Path, relative: str) -> None:
    """Best effort: a file that is already gone, or outside root, is left alone."""
    target = resolve_inside(root, relative)
    if target is not None:
        target.unlink(missing_ok=True)
