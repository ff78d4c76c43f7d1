"""An app's model files as a deployment's image (or volume) gets them: each checked to be a file name that stays
inside models/<folder>/, and split into those with a Hugging Face source (fetched at build or onto a volume) and
those without (each target words its own advice for them)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from publisher import AppSpec
from publisher.models import HF_SOURCE, ModelRef
from publisher.quoting import cut
from runtimes.serverless.packs import BundleInputError

_MODEL_FOLDER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class SourcedModel:
    """A model file and where on the Hub it comes from."""

    folder: str
    filename: str
    repo: str
    file: str
    revision: str | None
    sha256: str | None


def split_models(spec: AppSpec) -> tuple[list[SourcedModel], list[ModelRef]]:
    """(the models with a Hugging Face source, those without); BundleInputError names every file name that would
    land outside models/."""
    sourced: list[SourcedModel] = []
    unsourced: list[ModelRef] = []
    problems: list[str] = []
    for ref in spec.models:
        if not is_model_path(ref.folder, ref.filename):
            path = cut(f"{ref.folder}/{ref.filename}")
            problems.append(f"model '{path}' (node {ref.node}, input {ref.input}): not a file name under "
                            "models/<folder>/; rename the file in the workflow (no '..', no absolute path) and "
                            "publish again")
            continue
        match = HF_SOURCE.match(ref.source or "")
        if match is None:
            unsourced.append(ref)
            continue
        sourced.append(SourcedModel(ref.folder, ref.filename, match["repo"], match["file"], match["rev"],
                                    ref.sha256))
    if problems:
        raise BundleInputError(problems)
    return sourced, unsourced


def is_model_path(folder: str, filename: str) -> bool:
    """A folder name and a relative file name that stay inside models/ (the image writes there)."""
    parts = filename.replace("\\", "/").split("/")
    return bool(_MODEL_FOLDER.match(folder) and filename and "\0" not in filename and "\n" not in filename
                and not filename.startswith(("/", "\\")) and all(part not in ("", ".", "..") for part in parts))
