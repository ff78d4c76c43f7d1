"""Which node inputs could become form / API inputs, typed from the engine's schema.

Every literal (non-link) input of every node is a candidate. Some are *suggested* (pre-ticked):

- prompt texts: multiline STRING values traced back from a sampler's ``positive`` / ``negative``
  input through any conditioning (or string) nodes in between, labelled "Prompt" and
  "Negative prompt";
- seeds (``seed``/``noise_seed``, or an INT with ``control_after_generate`` and a range starting
  at 0 or above), typed "seed" with ``randomize`` on;
- ``steps``, ``cfg``, ``denoise``; ``width``/``height``/``batch_size`` of nodes that create a
  latent or image from nothing (EmptyLatentImage, EmptyImage...);
- upload inputs such as LoadImage ``image`` (typed "image", or "video"/"audio"/"file"; LoadImageMask's "mask");
- checkpoint and LoRA choices (``ckpt_name``, ``lora_name``) and the LoRA strengths.

Node-title convention: a node whose ``_meta.title`` starts with ``$`` (e.g. ``$Style``) has all
its literal inputs suggested; the ``$`` is dropped from labels. Rename a node in ComfyUI to mark it.
Other tools' marker nodes are suggested too: ComfyDeploy's ``ComfyUIDeployExternal*`` (labelled by
their display name or input id) and comfy-pack's ``CPackInput*`` (labelled by their title).

A file whose ComfyUI App Mode names inputs (:mod:`publisher.app_mode`) overrides all of this: exactly
those inputs are suggested, first and in App Mode's order (the form's order), the rest after them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal, cast

from .app_mode import AppModeInput, UiMarkings
from .node_schema import WIDGET_TYPES, InputSpec, NodeCatalog, NodeSchema
from .workflow import Workflow, is_link

CandidateType = Literal["text", "int", "float", "bool", "choice", "seed", "image", "mask", "video", "audio", "file"]

TITLE_MARK = "$"

# Readable names for common inputs; others are shown with underscores as spaces.
_HUMAN_NAMES = {
    "noise_seed": "seed",
    "cfg": "CFG",
    "ckpt_name": "checkpoint",
    "lora_name": "LoRA",
    "strength_model": "model strength",
    "strength_clip": "CLIP strength",
    "sampler_name": "sampler",
    "batch_size": "batch size",
    "filename_prefix": "filename prefix",
}
_BY_NAME_REASONS = {
    "steps": "sampling steps",
    "cfg": "guidance scale (CFG)",
    "denoise": "denoise strength",
    "ckpt_name": "checkpoint choice",
    "lora_name": "LoRA choice",
}
_WIDGET_TO_TYPE: dict[str, CandidateType] = {
    "INT": "int",
    "FLOAT": "float",
    "STRING": "text",
    "BOOLEAN": "bool",
    "COMBO": "choice",
}
_SIZE_INPUTS = {"width": "output size", "height": "output size", "batch_size": "batch size"}
APP_MODE_REASON = "chosen in ComfyUI's App Mode"
# Other tools' input nodes: (class_type prefix, the tool, inputs that describe the node rather than take a value).
_MARKER_NODES = (
    ("ComfyUIDeployExternal", "ComfyDeploy", ("input_id", "display_name", "description")),
    ("CPackInput", "comfy-pack", ("min", "max")),
)


@dataclass(frozen=True)
class CandidateInput:
    """A literal node input that could be exposed, with its type and the workflow's value."""

    node_id: str
    input_name: str
    class_type: str
    type: CandidateType
    label: str
    default: Any  # the value currently in the workflow
    min: int | float | None = None
    max: int | float | None = None
    step: int | float | None = None
    choices: tuple[Any, ...] = ()
    multiline: bool = False
    randomize: bool = False
    suggested: bool = False
    reason: str = ""
    tooltip: str | None = None
    height: float | None = None  # the widget's height in ComfyUI's App Mode, in pixels

    @property
    def key(self) -> str:
        return f"{self.node_id}.{self.input_name}"


@dataclass(frozen=True)
class _PromptRole:
    role: Literal["positive", "negative"]
    sink_id: str
    sink_label: str


def _is_seed(spec: InputSpec) -> bool:
    if spec.type != "INT":
        return False
    if "seed" in spec.name.lower():
        return True
    # control_after_generate also marks counters like PrimitiveInt (signed range): not seeds.
    return spec.control_after_generate and spec.min is not None and spec.min >= 0


def candidate_type(spec: InputSpec) -> CandidateType | None:
    """The form type for a widget input, or None when it is not a widget type."""
    if spec.upload is not None:
        return cast(CandidateType, spec.upload)
    if _is_seed(spec):
        return "seed"
    return _WIDGET_TO_TYPE.get(spec.type)


def _spec_from_value(name: str, value: object) -> InputSpec | None:
    """A guessed spec for an input of a node type the engine does not know."""
    if isinstance(value, bool):
        type_name = "BOOLEAN"
    elif isinstance(value, int):
        type_name = "INT"
    elif isinstance(value, float):
        type_name = "FLOAT"
    elif isinstance(value, str):
        type_name = "STRING"
    else:
        return None
    multiline = isinstance(value, str) and "\n" in value
    return InputSpec(name=name, type=type_name, required=False, multiline=multiline)


def _node_label_parts(workflow: Workflow, node_id: str, schema: NodeSchema | None) -> tuple[str, bool, bool]:
    """(label base, whether the user renamed the node, whether the title carries the mark)."""
    class_type = workflow.class_type(node_id)
    display = schema.display_name if schema else class_type
    title = workflow.title(node_id)
    marked = False
    if title is not None and title.startswith(TITLE_MARK):
        marked = True
        title = title[len(TITLE_MARK) :].strip() or None
    renamed = title is not None and title not in (display, class_type)
    return title or display, renamed, marked


def _sink_label(workflow: Workflow, node_id: str, catalog: NodeCatalog) -> str:
    base, _, _ = _node_label_parts(workflow, node_id, catalog.get(workflow.class_type(node_id)))
    return f"{base} (node {node_id})"


def _inputs_to_follow(schema: NodeSchema, inputs: dict[str, Any], slot: int) -> list[str]:
    """Link inputs to walk back through from output ``slot`` when tracing a prompt."""
    names = [
        s.name for s in schema.inputs if s.type in ("CONDITIONING", "STRING") and is_link(inputs.get(s.name))
    ]
    # Nodes like ControlNetApplyAdvanced pass positive and negative through on matching slots.
    out_name = schema.output_names[slot].lower() if 0 <= slot < len(schema.output_names) else ""
    if out_name in ("positive", "negative") and out_name in names:
        return [out_name]
    return names


def _trace_prompts(workflow: Workflow, catalog: NodeCatalog) -> dict[tuple[str, str], _PromptRole]:
    """Map (node id, input) of prompt texts to the sampler input they end up in."""
    found: dict[tuple[str, str], _PromptRole] = {}
    for sink_id in workflow.node_ids():
        sink = catalog.get(workflow.class_type(sink_id))
        # A sink consumes conditioning without passing it on (samplers, guiders).
        if sink is None or "CONDITIONING" in sink.outputs:
            continue
        roles: tuple[Literal["positive", "negative"], ...] = ("positive", "negative")
        for role in roles:
            spec = sink.input(role)
            start = workflow.inputs(sink_id).get(role)
            if spec is None or spec.type != "CONDITIONING" or not is_link(start):
                continue
            info = _PromptRole(role, sink_id, _sink_label(workflow, sink_id, catalog))
            _walk_back(workflow, catalog, (start[0], start[1]), info, found)
    return found


def _walk_back(
    workflow: Workflow,
    catalog: NodeCatalog,
    start: tuple[str, int],
    info: _PromptRole,
    found: dict[tuple[str, str], _PromptRole],
) -> None:
    stack = [start]
    seen: set[tuple[str, int]] = set()
    while stack:
        node_id, slot = stack.pop()
        if (node_id, slot) in seen or node_id not in workflow:
            continue
        seen.add((node_id, slot))
        schema = catalog.get(workflow.class_type(node_id))
        if schema is None:
            continue
        inputs = workflow.inputs(node_id)
        for spec in schema.inputs:
            value = inputs.get(spec.name)
            if spec.type == "STRING" and spec.multiline and isinstance(value, str):
                found.setdefault((node_id, spec.name), info)  # first role wins: positive is traced first
        for name in _inputs_to_follow(schema, inputs, slot):
            source_id, source_slot = inputs[name]
            stack.append((source_id, source_slot))


def _creates_image(workflow: Workflow, node_id: str, schema: NodeSchema) -> bool:
    """A node that makes a latent/image from nothing (no links in), so its size is the output size."""
    no_links = not any(is_link(v) for v in workflow.inputs(node_id).values())
    return no_links and bool({"LATENT", "IMAGE"} & set(schema.outputs))


def _marker_tool(class_type: str, input_name: str) -> str | None:
    """The tool whose input node this is (ComfyDeploy, comfy-pack) when `input_name` is its value, else None."""
    for prefix, tool, descriptive in _MARKER_NODES:
        if class_type.startswith(prefix) and input_name not in descriptive:
            return tool
    return None


def _marker_label(workflow: Workflow, node_id: str) -> str | None:
    """A ComfyDeploy input's own name for itself (display_name, else input_id)."""
    inputs = workflow.inputs(node_id)
    for name in ("display_name", "input_id"):
        value = inputs.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()[:80]
    return None


def _suggestion(
    spec: InputSpec,
    ctype: CandidateType,
    schema: NodeSchema | None,
    creates_image: bool,
    prompt: _PromptRole | None,
    marked: bool,
    tool: str | None = None,
) -> str | None:
    """Why this input is suggested, or None when it is not."""
    if tool is not None:
        return f"an input node of {tool}"
    if prompt is not None:
        return f"{prompt.role} prompt text of {prompt.sink_label}"
    if marked:
        return f"node title starts with '{TITLE_MARK}'"
    if ctype == "seed":
        return "random seed; a new one is drawn for each run unless given"
    if ctype in ("image", "mask", "video", "audio", "file"):
        return f"{ctype} upload"
    if creates_image and spec.name in _SIZE_INPUTS and ctype == "int":
        return _SIZE_INPUTS[spec.name]
    if spec.name in _BY_NAME_REASONS:
        return _BY_NAME_REASONS[spec.name]
    if spec.name.startswith("strength") and schema is not None and schema.input("lora_name") is not None:
        return "LoRA strength"
    return None


def _label(base: str, renamed: bool, spec: InputSpec, single: bool, prompt: _PromptRole | None) -> str:
    if prompt is not None and not renamed:
        return "Prompt" if prompt.role == "positive" else "Negative prompt"
    human = _humanize(spec.name)
    # A renamed node's lone input is what the title names; "Load Checkpoint" already says what
    # ckpt_name is. Whole words only, so "KSampler" does not swallow "sampler"; the joined form
    # lets "Load ControlNet Model" cover control_net_name.
    base_words = set(re.findall(r"\w+", base.lower()))
    human_words = re.findall(r"\w+", human.lower())
    if (single and renamed) or set(human_words) <= base_words or "".join(human_words) in base_words:
        return base
    return f"{base} {human}"


def _humanize(input_name: str) -> str:
    if input_name in _HUMAN_NAMES:
        return _HUMAN_NAMES[input_name]
    # Loader inputs are "<thing>_name": the thing is the readable part (vae_name -> "vae").
    stem = input_name.removesuffix("_name") or input_name
    return stem.replace("_", " ")


def _literal_specs(workflow: Workflow, node_id: str, schema: NodeSchema | None) -> list[InputSpec]:
    inputs = workflow.inputs(node_id)
    if schema is None:
        guessed = (_spec_from_value(name, value) for name, value in inputs.items())
        return [spec for spec in guessed if spec is not None]
    # Only plain values: lists are links, and {"__value__": ...} wrappers are engine internals.
    return [
        spec
        for spec in schema.inputs
        if spec.type in WIDGET_TYPES and isinstance(inputs.get(spec.name), str | int | float | bool)
    ]


def _node_candidates(
    workflow: Workflow,
    node_id: str,
    schema: NodeSchema | None,
    prompts: dict[tuple[str, str], _PromptRole],
) -> Iterable[CandidateInput]:
    specs = _literal_specs(workflow, node_id, schema)
    base, renamed, marked = _node_label_parts(workflow, node_id, schema)
    creates_image = schema is not None and _creates_image(workflow, node_id, schema)
    for spec in specs:
        ctype = candidate_type(spec)
        if ctype is None:
            continue
        if ctype == "image" and schema is not None and "MASK" in schema.outputs and "IMAGE" not in schema.outputs:
            ctype = "mask"  # LoadImageMask: the engine reads one channel of the file as the mask (a mask editor)
        prompt = prompts.get((node_id, spec.name))
        tool = _marker_tool(workflow.class_type(node_id), spec.name)
        reason = _suggestion(spec, ctype, schema, creates_image, prompt, marked, tool)
        label = _label(base, renamed, spec, len(specs) == 1, prompt)
        if tool is not None:
            label = _marker_label(workflow, node_id) or base
        value = workflow.inputs(node_id)[spec.name]
        if ctype == "float" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # exports write 8 for 8.0; keep the default's type honest
        yield CandidateInput(
            node_id=node_id,
            input_name=spec.name,
            class_type=workflow.class_type(node_id),
            type=ctype,
            label=label,
            default=value,
            min=spec.min,
            max=spec.max,
            step=spec.step,
            choices=spec.choices,
            multiline=spec.multiline,
            randomize=ctype == "seed",
            suggested=reason is not None,
            reason=reason or "",
            tooltip=spec.tooltip,
        )


_Suffix = Callable[[CandidateInput], str]


def _dedupe_labels(candidates: list[CandidateInput]) -> list[CandidateInput]:
    """Make labels unique: first by node id ("Prompt #10"), then by input name as well."""

    def with_suffix(items: list[CandidateInput], suffix: _Suffix) -> list[CandidateInput]:
        counts: dict[str, int] = {}
        for c in items:
            counts[c.label] = counts.get(c.label, 0) + 1
        return [c if counts[c.label] == 1 else replace(c, label=f"{c.label} {suffix(c)}") for c in items]

    once = with_suffix(candidates, lambda c: f"#{c.node_id}")
    return with_suffix(once, lambda c: f"({_humanize(c.input_name)})")


def _in_app_mode_order(candidates: list[CandidateInput], chosen: tuple[AppModeInput, ...]) -> list[CandidateInput]:
    """Exactly App Mode's inputs suggested, first and in its order; the others after them, not suggested."""
    position = {(entry.node_id, entry.widget): index for index, entry in enumerate(chosen)}
    marked = sorted((c for c in candidates if (c.node_id, c.input_name) in position),
                    key=lambda c: position[(c.node_id, c.input_name)])
    rest = [c for c in candidates if (c.node_id, c.input_name) not in position]
    height = {(entry.node_id, entry.widget): entry.height for entry in reversed(chosen)}  # the first entry's
    return ([replace(c, suggested=True, reason=APP_MODE_REASON, height=height[(c.node_id, c.input_name)])
             for c in marked]
            + [replace(c, suggested=False, reason="") for c in rest])


def find_candidates(workflow: Workflow, catalog: NodeCatalog,
                    markings: UiMarkings | None = None) -> list[CandidateInput]:
    """All literal inputs, ordered by node id (numeric) then the node's input order; with App Mode inputs in
    `markings`, those first (in App Mode's order) and only those suggested."""
    prompts = _trace_prompts(workflow, catalog)
    found: list[CandidateInput] = []
    for node_id in workflow.node_ids():
        schema = catalog.get(workflow.class_type(node_id))
        found.extend(_node_candidates(workflow, node_id, schema, prompts))
    found = _dedupe_labels(found)
    if markings is not None and markings.has_app_mode_inputs:
        return _in_app_mode_order(found, markings.inputs)
    return found


def suggested_candidates(workflow: Workflow, catalog: NodeCatalog,
                         markings: UiMarkings | None = None) -> list[CandidateInput]:
    return [c for c in find_candidates(workflow, catalog, markings) if c.suggested]
