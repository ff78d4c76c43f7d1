"""Which of the project's files a deployment's image ships: the container side (`runtimes/modal/container/`) and
what it imports, found by following its imports, and nothing else (no host code, no web app)."""

from __future__ import annotations

import ast
import functools
import shutil
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]
SHIPPED_PACKAGES = ("runtimes", "publisher")  # the top-level packages shipped files may come from
# The modules the generated modal_app.py imports inside the container.
CONTAINER_ENTRIES = ("runtimes.modal.container.worker", "runtimes.modal.container.endpoint",
                     "runtimes.modal.container.jobs")
# Shipped as files, not imported: the script an engine process runs under (it exits with its parent), a
# ComfyUI custom node the worker installs into its engine, and the node pack installer the image build runs.
CONTAINER_DATA = ("runtimes/engine/lifeline.py", "runtimes/modal/container/snapshot_node",
                  "runtimes/modal/container/pack_install.py")


def _file_of(module: str) -> Path | None:
    base = PROJECT_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path: Path) -> set[str]:
    """Our modules a file imports (absolute or relative; `from pkg import name` counts pkg.name when it is one)."""
    relative = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    package = relative[:-1]  # the package the file's relative imports start from (for __init__ too)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in SHIPPED_PACKAGES}


@functools.cache
def container_sources() -> tuple[Path, ...]:
    """The Python files the container imports, with every package __init__ on their way, sorted."""
    files: set[Path] = set()
    pending = list(CONTAINER_ENTRIES)
    while pending:
        module = pending.pop()
        parts = module.split(".")
        for depth in range(1, len(parts) + 1):  # the packages on the way are imported first
            path = _file_of(".".join(parts[:depth]))
            if path is not None and path not in files:
                files.add(path)
                pending.extend(_imported_modules(path))
    return tuple(sorted(files))


def copy_container_code(directory: Path) -> None:
    """A fresh copy of what the image ships, under `directory` (what was there from an earlier bundle goes)."""
    for package in SHIPPED_PACKAGES:
        shutil.rmtree(directory / package, ignore_errors=True)
    for source in container_sources():
        target = directory / source.relative_to(PROJECT_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    for relative in CONTAINER_DATA:
        source, target = PROJECT_ROOT / relative, directory / relative
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copyfile(source, target)
