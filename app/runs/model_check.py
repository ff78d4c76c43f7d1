"""The model files a local run will load, checked before the run is recorded: a missing one is refused at once,
naming the file, the folder it belongs in, its known source and the command that fetches it, rather than reaching
the engine and failing there with `value_not_in_list`.

A file counts as present when it is in the engines' models folder (a stat, no request), else when the
engine lists it among the loader's choices (one small `/object_info/<class>` request: a folder the engine reads
from elsewhere, such as a ComfyUI's own extra_model_paths.yaml, or a custom loader's folder no table knows)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from app.errors import Conflict
from publisher import AppSpec, NodeCatalog
from publisher.quoting import quote as quoted
from runtimes.models.store import present_path

_ENGINE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class LoadedModel:
    """A model file one node of the run loads."""

    node: str
    input: str
    class_type: str
    folder: str  # under the engine's models/; "unknown" for a loader input no table knows
    filename: str
    source: str | None  # hf://owner/repo/path[@rev], when the app knows where it comes from


def loaded_models(spec: AppSpec, values: Mapping[str, Any]) -> list[LoadedModel]:
    """The model files a run with these input values loads: the app's models, each replaced by the run's value
    when a published input sets that loader input."""
    by_target = {(i.node, i.input): i.name for i in spec.inputs}
    needed = []
    for ref in spec.models:
        name = by_target.get((ref.node, ref.input))
        value = values.get(name, ref.filename) if name is not None else ref.filename
        if not isinstance(value, str):
            continue
        class_type = str(spec.workflow.get(ref.node, {}).get("class_type", ""))
        source = ref.source if value == ref.filename else None
        needed.append(LoadedModel(ref.node, ref.input, class_type, ref.folder, value, source))
    return needed


def fetch_command(slug: str, data_dir_flag: str, model: LoadedModel, managed: bool = True) -> str:
    """The command that puts this file in place: from its known source, else from one the user names; into the
    engine's own models folder when the app does not manage it."""
    command = f"python launch.py{data_dir_flag} models pull {slug}"
    if not managed:
        command += " --models-dir /path/to/that/ComfyUI/models"
    if model.source is None:
        command += f" --source {model.filename}=hf://OWNER/REPO/PATH"
    return command


def publish_warnings(spec: AppSpec, slug: str, data_dir_flag: str, managed: bool = True) -> list[str]:
    """What publishing says of the model files the engine did not list: the app is stored (a serverless
    deployment's Volume may get them from their sources), but runs here are refused until they are in place."""
    refs_and_needs = zip(spec.models, loaded_models(spec, {}), strict=True)
    return [missing_problem(model, fetch_command(slug, data_dir_flag, model, managed))["message"]
            for ref, model in refs_and_needs if not ref.available]


class MissingModels(Conflict):
    """The run needs model files the engine does not have; `problems` names each with where to get it."""

    def __init__(self, message: str, problems: list[dict[str, Any]]) -> None:
        super().__init__({"message": message, "problems": problems})
        self.message, self.problems = message, problems


def missing_problem(model: LoadedModel, command: str) -> dict[str, Any]:
    where = f"models/{model.folder}/" if model.folder != "unknown" else "the folder its loader reads"
    source = f" Its source: {model.source}." if model.source else " The app names no source for it."
    return {
        "node": model.node, "input": model.input, "file": model.filename, "folder": model.folder,
        "source": model.source, "fetch": command,
        "message": (f"node {model.node} ({model.class_type}) input {model.input}: the model file "
                    f"{quoted(model.filename)} is not on this engine; it belongs in {where}.{source} "
                    f"Fetch it with: {command}"),
    }


class ModelFiles:
    """Checks a local run's model files against the engine's folders (and, for a file not there, the engine)."""

    def __init__(self, models_dir: Callable[[], Path | None], engine_url: Callable[[], str | None],
                 data_dir_flag: str = "") -> None:
        self.models_dir = models_dir  # the engines' models folder (EngineStatus.models_dir); None when unknown
        self.engine_url = engine_url  # a ready engine, to ask about a file not on disk; None: none ready
        self.data_dir_flag = data_dir_flag  # " --data-dir D" when the app does not run on the default one

    def check(self, spec: AppSpec, values: Mapping[str, Any], slug: str) -> None:
        """Raises MissingModels naming every file the run needs that the engine lacks."""
        models_dir = self.models_dir()
        unsure = [m for m in loaded_models(spec, values)
                  if models_dir is None or present_path(models_dir, m.folder, m.filename) is None]
        listed = self._listed_by_engine(unsure) if unsure else {}
        # What the engine lists counts; when no engine answers, the known folder alone decides (an engine given by
        # URL without --models-dir keeps its files where we cannot see: then nothing is refused on a guess).
        if listed is None:
            missing = unsure if models_dir is not None else []
        else:
            missing = [m for m in unsure if (m.class_type, m.input) in listed
                       and m.filename not in listed[(m.class_type, m.input)]]
        if missing:
            problems = [missing_problem(m, fetch_command(slug, self.data_dir_flag, m, models_dir is not None))
                        for m in missing]
            files = ", ".join(quoted(m.filename) for m in missing)
            raise MissingModels(f"This run needs model files the engine does not have: {files}. Fetch them "
                                f"(`{problems[0]['fetch']}`) or put them in place, then run again.", problems)

    def _listed_by_engine(self, models: list[LoadedModel]) -> dict[tuple[str, str], tuple[Any, ...]] | None:
        """The choices a ready engine lists for each model's loader input (a node type it lacks: absent); None
        when no engine answers."""
        url = self.engine_url()
        if url is None:
            return None
        choices: dict[tuple[str, str], tuple[Any, ...]] = {}
        try:
            with httpx.Client(timeout=_ENGINE_TIMEOUT_S, trust_env=False) as client:
                for class_type in {m.class_type for m in models}:
                    response = client.get(f"{url}/object_info/{quote(class_type, safe='')}")
                    response.raise_for_status()
                    schema = NodeCatalog.from_object_info(response.json()).get(class_type)
                    for m in models:
                        spec = schema.input(m.input) if schema is not None and m.class_type == class_type else None
                        if spec is not None:
                            choices[(m.class_type, m.input)] = tuple(spec.choices)
        except (httpx.HTTPError, ValueError):
            return None
        return choices
