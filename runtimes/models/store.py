"""The engines' models folder (EngineSettings.models_dir): where a file a workflow names goes, and whether it is
already there. Names come from workflows and API callers: none may leave the folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Folders the engine reads as one (folder_paths maps the old name onto the new): a file in either is present.
FOLDER_ALIASES = {
    "text_encoders": ("text_encoders", "clip"),
    "clip": ("clip", "text_encoders"),
    "diffusion_models": ("diffusion_models", "unet"),
    "unet": ("unet", "diffusion_models"),
    "controlnet": ("controlnet", "t2i_adapter"),
    "t2i_adapter": ("t2i_adapter", "controlnet"),
}
PART_SUFFIX = ".part"  # a download in progress, resumed from where it stopped
LOCKS = ".fetch-locks"  # under the models folder: one lock file per file being fetched
VERIFIED = ".verified"  # under the models folder: the sha256 each fetched file was checked to have


class ModelPathError(ValueError):
    """A folder or file name that would leave the models folder (or cannot name a file in it)."""


def target_path(models_dir: Path, folder: str, name: str) -> Path:
    """models/<folder>/<name>, refused when either part would lead out of models/<folder>/ (absolute, `..`)."""
    for label, value in (("folder", folder), ("file name", name)):
        if not value or "\\" in value or "\0" in value or value.startswith("/") or \
                any(part in ("", ".", "..") for part in value.split("/")):
            raise ModelPathError(f"model {label} {value!r} cannot be used: give a plain relative name inside "
                                 "the engine's models folder (no '..', no leading '/')")
    if "/" in folder or folder == "unknown":
        raise ModelPathError(f"model folder {folder!r} is not one of the engine's models folders")
    root = models_dir.resolve()
    path = (root / folder / name).resolve()
    if not path.is_relative_to(root / folder):
        raise ModelPathError(f"model file {name!r} would leave models/{folder}/ (through a link?)")
    return path


def present_path(models_dir: Path, folder: str, name: str) -> Path | None:
    """Where the engine would find models/<folder>/<name> (in the folder or one it reads as the same), if it is
    there."""
    for candidate in FOLDER_ALIASES.get(folder, (folder,)):
        try:
            path = target_path(models_dir, candidate, name)
        except ModelPathError:
            return None
        if path.is_file():
            return path
    return None


@dataclass(frozen=True)
class StoredModel:
    folder: str
    name: str  # relative to the folder, "/" between sub-folders
    size: int


def list_models(models_dir: Path) -> list[StoredModel]:
    """Every file under the models folders (partial downloads left out), by folder then name."""
    found = []
    if not models_dir.is_dir():
        return found
    for folder in sorted(p for p in models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for root, _dirs, files in os.walk(folder):
            for file in files:
                path = Path(root) / file
                if file.endswith(PART_SUFFIX) or file.startswith("put_") or not path.is_file():
                    continue  # the engine's placeholders (put_checkpoints_here) are no models
                found.append(StoredModel(folder.name, path.relative_to(folder).as_posix(), path.stat().st_size))
    return sorted(found, key=lambda m: (m.folder, m.name))
