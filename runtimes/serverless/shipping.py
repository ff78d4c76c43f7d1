"""Which of the project's files a deployment's image ships: a target's container side (the entry modules its
generated file imports) and what they import, found by following the imports, and nothing else (no host code, no
web app). Each target names its entries and data files (runtimes/modal/host/generate.py, runtimes/runpod/host/...).
"""

from __future__ import annotations

import ast
import functools
import shutil
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_PACKAGES = ("runtimes", "publisher")  # the top-level packages shipped files may come from
# Shipped by every target as a file, not imported: the script an engine process runs under (it exits with its
# parent).
ENGINE_DATA = ("runtimes/engine/lifeline.py",)


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
def container_sources(entries: tuple[str, ...]) -> tuple[Path, ...]:
    """The Python files the `entries` modules import, with every package __init__ on their way, sorted."""
    files: set[Path] = set()
    pending = list(entries)
    while pending:
        module = pending.pop()
        parts = module.split(".")
        for depth in range(1, len(parts) + 1):  # the packages on the way are imported first
            path = _file_of(".".join(parts[:depth]))
            if path is not None and path not in files:
                files.add(path)
                pending.extend(_imported_modules(path))
    return tuple(sorted(files))


def copy_container_code(directory: Path, entries: tuple[str, ...], data: tuple[str, ...] = ()) -> None:
    """A fresh copy of what the image ships, under `directory` (what was there from an earlier bundle goes): the
    code `entries` import, and the `data` files and folders (relative to the project) besides ENGINE_DATA."""
    for package in SHIPPED_PACKAGES:
        shutil.rmtree(directory / package, ignore_errors=True)
    for source in container_sources(entries):
        target = directory / source.relative_to(PROJECT_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    for relative in (*ENGINE_DATA, *data):
        source, target = PROJECT_ROOT / relative, directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)  # a data file's folder may hold no shipped module
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copyfile(source, target)
