"""Analyze and publish a workflow: one implementation behind the REST routes and the studio."""

from __future__ import annotations

import re
from dataclasses import asdict, replace
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, Unprocessable
from app.runs.model_check import publish_warnings
from app.services import Services
from app.settings import data_dir_flag
from db import crud_apps
from db.models import App, AppVersion
from publisher import (
    AppSpec,
    AppSpecError,
    NodeCatalog,
    Workflow,
    WorkflowFormatError,
    build_app_spec,
    check_graph,
    detect_format,
    find_candidates,
    find_model_refs,
    find_outputs,
    validate_graph,
)
from publisher.app_mode import UiMarkings, load_marked_workflow, unresolved_markings
from publisher.file_paths import path_problems
from publisher.model_needs import with_hashes
from publisher.model_sources import sourced_models
from publisher.node_packs import MissingNodeTypesError, PackPin, PinError, parse_pin
from publisher.validate import GraphValidationError

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class PublishInput(BaseModel):
    node: str = Field(description="node id in the API-format workflow")
    input: str = Field(description="the node input to make dynamic")
    name: str | None = Field(None, description="API name of the input (default: from the label)")
    label: str | None = None
    default: Any = None
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: list[Any] | None = None
    required: bool | None = None
    randomize: bool | None = Field(None, description="seeds: draw a new seed when none is given")
    help: str | None = None
    max_length: int | None = Field(None, description="text inputs: the most characters a value may have "
                                                     "(default 10000)")
    height: float | None = Field(None, description="how tall the form shows it, in pixels (a text's box, an "
                                                   "image's preview; default: from ComfyUI's App Mode, else the "
                                                   "form's own)")


class PublishRequest(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    slug: str | None = Field(None, description="URL name; default: from the name. Publishing again to the same "
                                               "slug makes a new version")
    description: str = Field("", max_length=10_000)
    workflow: dict[str, Any] = Field(description="API-format workflow (ComfyUI: Export (API)), or the UI-format "
                                                 "workflow.json ComfyUI saves (converted with the engine's schemas)")
    inputs: list[PublishInput] | None = Field(None, description="the inputs to publish, in the form's order "
                                                                "(default: those the UI-format file marks in "
                                                                "ComfyUI's App Mode, else none)")
    outputs: list[str] | None = Field(None, description="output node ids to publish (default: those App Mode marks, "
                                                        "else the save nodes)")
    public: bool | None = Field(None, description="anyone may run it without an API key (default: private for a "
                                                  "new app, unchanged for a new version)")
    timeout_s: float | None = Field(None, description="per-run limit in seconds (default 600)")
    keep_metadata: bool | None = Field(None, description="output files keep the workflow the engine embeds in "
                                                         "them (PNG text chunks `prompt` and `workflow`, EXIF, "
                                                         "audio and video tags): "
                                                         "its checkpoint, prompts and every setting (default: kept "
                                                         "for a public app, stripped for a private one)")
    model_sources: dict[str, str] = Field(
        default_factory=dict, description="where a serverless deployment downloads each model file: its file name "
                                          "(or folder/file name, as analyze lists them) -> "
                                          "hf://owner/repo/path/in/repo.safetensors[@revision]")
    custom_nodes: list[str] = Field(
        default_factory=list, max_length=100,
        description="the node packs the app needs, each pinned: GIT_URL@COMMIT (a full 40-hex commit) or "
                    "REGISTRY_ID@VERSION (x.y.z), as analyze proposes them in missing_node_types[].pack.pin")


class PublishError(Unprocessable):
    """The request cannot be published; `problems` names each thing to fix."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message, problems)


class PublishConflict(Conflict):
    """Another request published the same slug at the same moment: publish again."""


def slug_of(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63]


def analyze(raw: Any, catalog: NodeCatalog) -> dict[str, Any]:
    """Format, nodes, candidate inputs (typed from the engine's schemas), outputs, missing node types, models.
    A UI-format file is converted first; "workflow" is the API-format prompt everything else describes. Its App
    Mode choices decide which inputs are suggested (in App Mode's order) and which outputs are published.
    Raises WorkflowFormatError for a file that is no workflow or cannot be converted (MissingNodeTypesError
    when node types are missing, naming their packs)."""
    workflow, markings = load_marked_workflow(raw, catalog)
    problems = validate_graph(workflow, catalog)
    missing = [{"class_type": class_type, "nodes": list(nodes), "pack": _pack(markings, class_type)}
               for p in problems for class_type, nodes in (p.missing_types or ())]
    candidates = find_candidates(workflow, catalog, markings)
    outputs = find_outputs(workflow, catalog, markings)
    return {
        "format": detect_format(raw),
        "workflow": workflow.to_prompt(),
        "nodes": [{"id": node_id, "class_type": workflow.class_type(node_id), "title": workflow.title(node_id),
                   "known": workflow.class_type(node_id) in catalog} for node_id in workflow.node_ids()],
        "inputs": [candidate_dict(c) for c in candidates],
        "outputs": [asdict(o) for o in outputs],
        "missing_node_types": missing,
        "problems": [asdict(p) for p in problems],
        # each with the source the file declares for it, if any
        "models": [asdict(m) for m in with_hashes(sourced_models(find_model_refs(workflow, catalog),
                                                                 markings.model_sources, {}, []),
                                                  markings.model_hashes)],
        "app_mode": {
            "linear_mode": markings.linear_mode,
            "inputs": [{"node": c.node_id, "input": c.input_name} for c in candidates
                       if markings.has_app_mode_inputs and c.suggested],
            "outputs": [o.node_id for o in outputs if markings.outputs and o.published_by_default],
            "problems": unresolved_markings(markings, workflow, {(c.node_id, c.input_name) for c in candidates},
                                            {o.node_id for o in outputs}),
        },
    }


def _pack(markings: UiMarkings, class_type: str) -> dict[str, Any] | None:
    pack = markings.packs.get(class_type)
    return pack.to_dict() if pack else None


def missing_node_types(exc: MissingNodeTypesError) -> list[dict[str, Any]]:
    """A refusal's missing node types as analyze lists them: type, nodes, and the pack to install when known."""
    return [{"class_type": m.class_type, "nodes": list(m.nodes), "pack": m.pack.to_dict() if m.pack else None}
            for m in exc.missing]


def candidate_dict(candidate: Any) -> dict[str, Any]:
    data = asdict(candidate)
    data["node"] = data.pop("node_id")
    data["input"] = data.pop("input_name")
    data["choices"] = list(candidate.choices)
    return data


def build_spec(body: PublishRequest, catalog: NodeCatalog) -> AppSpec:
    """The spec the request would publish (nothing is written); PublishError lists every problem. Inputs and
    outputs left out of the request are those the file marks in ComfyUI's App Mode (inputs: else none; outputs:
    else the save nodes)."""
    try:
        workflow, markings = load_marked_workflow(body.workflow, catalog)  # the spec stores the API-format prompt
    except WorkflowFormatError as exc:
        raise PublishError("The workflow cannot be read", [str(exc)]) from None
    if escaping := path_problems(workflow, catalog):
        raise PublishError("The workflow names files outside the engine's folders", escaping)
    packs = _pinned_packs(body.custom_nodes)
    try:
        check_graph(workflow, catalog)
        spec = build_app_spec(workflow, catalog, _requested_inputs(body, workflow, catalog, markings),
                              outputs=_requested_outputs(body, workflow, catalog, markings),
                              timeout_s=body.timeout_s, model_sources=body.model_sources,
                              declared_sources=markings.model_sources, declared_hashes=markings.model_hashes)
        return replace(spec, custom_nodes=packs)
    except GraphValidationError as exc:
        raise PublishError("The workflow would not run on this engine", [str(p) for p in exc.problems]) from None
    except AppSpecError as exc:
        raise PublishError("The app cannot be published", exc.problems) from None


def _pinned_packs(pins: list[str]) -> tuple[dict[str, str], ...]:
    """custom_nodes as the spec keeps them ({repo, commit} or {registry, version}); PublishError naming each bad pin."""
    packs: dict[str, PackPin] = {}  # by folder: one pin per pack
    problems = []
    for position, text in enumerate(pins, start=1):
        try:
            pin = parse_pin(text)
        except PinError as exc:
            problems.append(f"custom_nodes[{position}]: {exc}")
            continue
        if packs.setdefault(pin.folder, pin) != pin:
            problems.append(f"custom_nodes[{position}]: {pin} and {packs[pin.folder]} are two pins of the pack "
                            f"'{pin.folder}': keep one")
    if problems:
        raise PublishError("A node pack pin cannot be used", problems)
    return tuple(pin.to_dict() for pin in packs.values())


def _requested_inputs(body: PublishRequest, workflow: Workflow, catalog: NodeCatalog,
                      markings: UiMarkings) -> list[dict[str, Any]]:
    if body.inputs is not None:
        return [i.model_dump(exclude_none=True) for i in body.inputs]
    if not markings.has_app_mode_inputs:
        return []
    return [{"node": c.node_id, "input": c.input_name, **({"height": c.height} if c.height is not None else {})}
            for c in find_candidates(workflow, catalog, markings) if c.suggested]


def _requested_outputs(body: PublishRequest, workflow: Workflow, catalog: NodeCatalog,
                       markings: UiMarkings) -> list[str] | None:
    if body.outputs is not None or not markings.outputs:
        return body.outputs
    chosen = [o.node_id for o in find_outputs(workflow, catalog, markings) if o.published_by_default]
    return chosen or None  # none of App Mode's outputs is in the workflow: the save nodes, as without App Mode


async def publish(services: Services, body: PublishRequest, catalog: NodeCatalog) -> tuple[App, AppVersion]:
    """Publish a workflow as an app, or as version N+1 of the app with the same slug."""
    slug = body.slug or slug_of(body.name)
    if not SLUG.match(slug):
        raise PublishError(f"slug '{slug}' is not usable in a URL", ["use lowercase letters, digits and -"])
    spec = build_spec(body, catalog)
    app, version = await services.db(_store_version, slug, body, spec)
    await services.apps.changed(slug)  # its form and the OpenAPI document follow the new version
    return app, version


def model_warnings(services: Services, slug: str, version: AppVersion) -> list[str]:
    """The published version's model files this engine did not list, each with the command that fetches it."""
    return publish_warnings(AppSpec.from_dict(version.spec), slug, data_dir_flag(services.settings.data_dir),
                            managed=services.engines.models_dir() is not None)


def _store_version(session: Session, slug: str, body: PublishRequest, spec: AppSpec) -> tuple[App, AppVersion]:
    existing = crud_apps.get_app(session, slug=slug, include_deleted=True)
    public = body.public if body.public is not None else bool(existing and existing.public)
    spec = replace(spec, keep_metadata=body.keep_metadata if body.keep_metadata is not None else public)
    try:
        version = crud_apps.publish_version(session, slug=slug, name=body.name, description=body.description,
                                            public=public, spec=spec.to_dict())
    except IntegrityError:
        raise PublishConflict(f"'{slug}' was being published by another request at the same moment; publish "
                              "again.") from None
    app = crud_apps.get_app(session, slug=slug)
    assert app is not None
    return app, version
