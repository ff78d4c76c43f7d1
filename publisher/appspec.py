"""The AppSpec: one immutable, published version of an app.

Built from a workflow, the engine's catalog and the publisher's choice of inputs (each a node input
with optional overrides: name, label, default, range, choices, help). Every choice is checked against
the engine's own schema, and all problems are reported at once, naming the input and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any

from .apply import (
    BINDING_TYPES,
    TEXT_MAX_LENGTH_LIMIT,
    InputBinding,
    InputValuesError,
    apply_values,
    slugify,
)
from .candidates import CandidateInput, find_candidates
from .literals import is_finite_number, short
from .model_needs import with_hashes
from .model_sources import sourced_models
from .models import ModelRef, find_model_refs
from .node_schema import NodeCatalog
from .outputs import OutputNode, default_published_outputs, find_outputs
from .workflow import Workflow, load_workflow, short_repr

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")  # a JSON key, a form field and a Python identifier
DEFAULT_TIMEOUT_S = 600.0
_OVERRIDABLE = ("name", "label", "default", "min", "max", "step", "choices", "required", "randomize", "help",
                "max_length", "height")
MAX_HEIGHT = 4000  # pixels: a box taller than a screen is a mistake


class AppSpecError(ValueError):
    """The requested inputs or outputs do not fit the workflow; `problems` lists every one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("The app cannot be published:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class AppInput(InputBinding):
    """A published input: the binding the engine needs, plus what a form shows."""

    help: str = ""
    multiline: bool = False
    # How tall the form shows it, in pixels (a text's box, an image's preview): what ComfyUI's App Mode stored for
    # the widget; None (and in versions stored before it): the form's own size.
    height: int | None = None

    def schema(self) -> dict[str, Any]:
        """The input as clients see it (API docs, forms)."""
        out = {key: value for key, value in asdict(self).items() if value not in (None, "", ())}
        out["choices"] = list(self.choices) if self.choices else None
        out["required"] = self.required
        return {key: value for key, value in out.items() if value is not None}


@dataclass(frozen=True)
class AppOutput:
    node: str
    kind: str
    label: str


@dataclass(frozen=True)
class AppSpec:
    workflow: dict[str, Any]
    inputs: tuple[AppInput, ...]
    outputs: tuple[AppOutput, ...]
    timeout_s: float = DEFAULT_TIMEOUT_S
    models: tuple[ModelRef, ...] = ()
    custom_nodes: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    # Outputs keep the workflow the engine embeds in them (PNG text, EXIF); publishing sets it (kept for a public
    # app unless the publisher says otherwise). False for versions stored before the setting: private by default.
    keep_metadata: bool = False

    @property
    def output_nodes(self) -> tuple[str, ...]:
        return tuple(output.node for output in self.outputs)

    def input(self, name: str) -> AppInput | None:
        return next((i for i in self.inputs if i.name == name), None)

    @cached_property
    def loaded_workflow(self) -> Workflow:
        """The workflow, loaded once per spec (a version is immutable; applying values never changes it)."""
        return load_workflow(self.workflow)

    def to_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "inputs": [asdict(i) for i in self.inputs],
            "outputs": [asdict(o) for o in self.outputs],
            "timeout_s": self.timeout_s,
            "models": [asdict(m) for m in self.models],
            "custom_nodes": list(self.custom_nodes),
            "keep_metadata": self.keep_metadata,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AppSpec:
        return cls(
            workflow=dict(data["workflow"]),
            inputs=tuple(AppInput(**_with_tuples(i)) for i in data["inputs"]),
            outputs=tuple(AppOutput(**o) for o in data["outputs"]),
            timeout_s=float(data.get("timeout_s", DEFAULT_TIMEOUT_S)),
            models=tuple(ModelRef(**m) for m in data.get("models", [])),
            custom_nodes=tuple(data.get("custom_nodes", [])),
            keep_metadata=bool(data.get("keep_metadata", False)),
        )


def _with_tuples(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {**raw, "choices": tuple(raw.get("choices") or ())}


def build_app_spec(
    workflow: Workflow,
    catalog: NodeCatalog,
    requested: Sequence[Mapping[str, Any]],
    *,
    outputs: Sequence[str] | None = None,
    timeout_s: float | None = None,
    model_sources: Mapping[str, str] | None = None,
    declared_sources: Mapping[str, str] | None = None,
    declared_hashes: Mapping[str, str] | None = None,
) -> AppSpec:
    """Check the publisher's choices against the workflow and the engine; build the spec. `model_sources` says
    where each model file can be downloaded (file name or folder/file -> hf://owner/repo/file[@revision]);
    `declared_sources`, where the UI file itself says (model_sources.declared_sources), for the files it leaves out;
    `declared_hashes`, the sha256 it gives for them (model_needs.declared_hashes)."""
    problems: list[str] = []
    models = with_hashes(sourced_models(find_model_refs(workflow, catalog), declared_sources or {},
                                        model_sources or {}, problems), declared_hashes or {},
                         overridden=tuple(model_sources or ()))
    candidates = {c.key: c for c in find_candidates(workflow, catalog)}
    inputs: list[AppInput] = []
    for position, raw in enumerate(requested, start=1):
        made = _make_input(workflow, candidates, raw, position, problems)
        if made is not None:
            inputs.append(made)
    _check_unique(inputs, problems)
    published = _pick_outputs(workflow, catalog, outputs, problems)
    if timeout_s is not None and not (1 <= timeout_s <= 24 * 3600):
        problems.append(f"timeout_s {timeout_s} is out of range: give 1 to 86400 seconds")
    if not problems:
        _check_defaults_apply(workflow, inputs, problems)
    if problems:
        raise AppSpecError(problems)
    return AppSpec(
        workflow=workflow.to_prompt(),
        inputs=tuple(inputs),
        outputs=tuple(AppOutput(o.node_id, o.kind, o.label) for o in published),
        timeout_s=timeout_s or DEFAULT_TIMEOUT_S,
        models=tuple(models),
    )


def _make_input(
    workflow: Workflow,
    candidates: Mapping[str, CandidateInput],
    raw: Mapping[str, Any],
    position: int,
    problems: list[str],
) -> AppInput | None:
    node, name_in_node = str(raw.get("node", "")), str(raw.get("input", ""))
    where = f"input #{position} ({node}.{name_in_node})"
    unknown = sorted(set(raw) - {"node", "input", *_OVERRIDABLE})
    if unknown:
        problems.append(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: node, input, "
                        + ", ".join(_OVERRIDABLE))
    if node not in workflow.nodes:
        problems.append(f"{where}: node '{node}' is not in the workflow (its nodes: "
                        + ", ".join(workflow.node_ids()) + ")")
        return None
    candidate = candidates.get(f"{node}.{name_in_node}")
    if candidate is None:
        literal = [c.input_name for c in candidates.values() if c.node_id == node]
        class_type = workflow.class_type(node)
        is_link = name_in_node in workflow.inputs(node)
        why = "is connected to another node, not a value" if is_link else "does not exist"
        problems.append(f"{where}: input '{name_in_node}' of node {node} ({class_type}) {why}; inputs that "
                        f"can be made dynamic: {', '.join(literal) or 'none'}")
        return None
    base = AppInput(
        node=node, input=name_in_node, type=candidate.type, label=candidate.label, default=candidate.default,
        min=candidate.min, max=candidate.max, step=candidate.step, choices=candidate.choices,
        randomize=candidate.randomize, multiline=candidate.multiline, help=candidate.tooltip or "",
    )
    return _override(base, candidate, raw, where, problems)


def _override(
    base: AppInput, candidate: CandidateInput, raw: Mapping[str, Any], where: str, problems: list[str]
) -> AppInput | None:
    changes: dict[str, Any] = {k: raw[k] for k in _OVERRIDABLE if k in raw and raw[k] is not None}
    if "label" in changes and "name" not in changes:
        changes["name"] = slugify(str(changes["label"]))
    name = str(changes.get("name") or base.name or slugify(base.label))
    if not NAME_PATTERN.match(name):
        problems.append(f"{where}: name {short_repr(name)} must start with a letter or _ and hold only letters, digits "
                        "and _ (64 at most): it becomes a JSON field and a form field")
        return None
    changes["name"] = name
    for bound in ("min", "max", "step"):
        if bound in changes and not is_finite_number(changes[bound]):
            problems.append(f"{where}: {bound} must be a finite number, got {short(changes[bound])}")
            return None
    if "step" in changes and changes["step"] <= 0:
        problems.append(f"{where}: step must be above 0, got {changes['step']}")
    if "max_length" in changes and not _max_length_fits(base, changes["max_length"], where, problems):
        return None
    if "height" in changes:
        height = changes["height"]
        if not is_finite_number(height) or not 1 <= height <= MAX_HEIGHT:
            problems.append(f"{where}: height must be a number of pixels from 1 to {MAX_HEIGHT}, got {short(height)}")
            return None
        changes["height"] = round(height)
    low, high = changes.get("min", base.min), changes.get("max", base.max)
    if candidate.min is not None and low is not None and low < candidate.min:
        problems.append(f"{where}: min {low} is below what the engine accepts ({candidate.min})")
    if candidate.max is not None and high is not None and high > candidate.max:
        problems.append(f"{where}: max {high} is above what the engine accepts ({candidate.max})")
    if low is not None and high is not None and low > high:
        problems.append(f"{where}: min {low} is greater than max {high}")
    if "choices" in changes:
        chosen = tuple(changes["choices"]) if isinstance(changes["choices"], list | tuple) else None
        allowed = set(candidate.choices)
        if chosen is None or not chosen:
            problems.append(f"{where}: choices must be a non-empty list")
            return None
        outside = [c for c in chosen if allowed and c not in allowed]
        if outside:
            problems.append(f"{where}: choices {outside} are not offered by the engine for this input")
        changes["choices"] = chosen
    if changes.get("required"):
        changes["default"] = None  # required means the caller gives it: the workflow's value is not a fallback
    if "type" in raw and raw["type"] not in BINDING_TYPES:
        problems.append(f"{where}: unknown type {raw['type']!r}")
    return replace(base, **changes)


def _max_length_fits(base: AppInput, value: object, where: str, problems: list[str]) -> bool:
    if base.type != "text":
        problems.append(f"{where}: max_length only applies to text inputs; this one is {base.type}")
        return False
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= TEXT_MAX_LENGTH_LIMIT:
        problems.append(f"{where}: max_length must be a whole number of characters from 1 to "
                        f"{TEXT_MAX_LENGTH_LIMIT}, got {short(value)}")
        return False
    return True


def _check_unique(inputs: Sequence[AppInput], problems: list[str]) -> None:
    seen_names: dict[str, str] = {}
    seen_targets: set[tuple[str, str]] = set()
    for item in inputs:
        target = (item.node, item.input)
        if target in seen_targets:
            problems.append(f"input {item.node}.{item.input} is listed twice")
        seen_targets.add(target)
        if item.name in seen_names:
            problems.append(f"inputs {seen_names[item.name]} and {item.node}.{item.input} have the same name "
                            f"'{item.name}': give one of them another name")
        seen_names[item.name] = f"{item.node}.{item.input}"


def _pick_outputs(
    workflow: Workflow, catalog: NodeCatalog, requested: Sequence[str] | None, problems: list[str]
) -> list[OutputNode]:
    found = {o.node_id: o for o in find_outputs(workflow, catalog)}
    if requested is None:
        chosen = default_published_outputs(workflow, catalog)
        if not chosen:
            problems.append("the workflow has no save node to publish (SaveImage, SaveVideo, SaveAudio...); add "
                            "one, or list the output nodes to publish (previews included)")
        return chosen
    picked = []
    for node in map(str, requested):
        if node not in found:
            problems.append(f"output node '{node}' is not an output node of the workflow (output nodes: "
                            + (", ".join(found) or "none") + ")")
        else:
            picked.append(found[node])
    if not picked and not problems:
        problems.append("outputs is empty: publish at least one output node")
    return picked


def _check_defaults_apply(workflow: Workflow, inputs: Sequence[AppInput], problems: list[str]) -> None:
    """A default that its own input would refuse is a publishing mistake, not a user's."""
    optional = [i for i in inputs if not i.required]  # a required input has no default by design
    # A choice left at the workflow's own value was judged already, as the engine judges it (validate_graph): a
    # model file the engine lacks today (its list is what it holds) stays publishable.
    defaults = {i.name: i.default for i in optional if i.default is not None
                and not (i.type == "choice" and i.default == workflow.inputs(i.node).get(i.input))}
    try:
        apply_values(workflow, optional, defaults)
    except InputValuesError as exc:
        problems.extend(f"default of input '{e.input}': {e.message}" for e in exc.errors)
