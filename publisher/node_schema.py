"""A typed view of the engine's ``GET /object_info``: what inputs and outputs each node type has.

Input specs come in several shapes, all handled here:
``["INT", {"default", "min", "max", "step", "control_after_generate"}]``, ``["FLOAT", {...}]``,
``["STRING", {"multiline"}]``, ``["BOOLEAN", {...}]``, the legacy combo ``[["a", "b"], {...}]``,
the newer ``["COMBO", {"options": [...]}]``, link types such as ``["MODEL"]`` (the options dict
may be missing), and hidden inputs given as bare strings.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})

# Option flags the engine uses to mark combo inputs as file uploads, mapped to a media kind.
UPLOAD_FLAGS = {
    "image_upload": "image",
    "video_upload": "video",
    "audio_upload": "audio",
    "file_upload": "file",
}


def _number(value: object) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


@dataclass(frozen=True)
class InputSpec:
    """One declared input of a node type."""

    name: str
    type: str  # INT, FLOAT, STRING, BOOLEAN, COMBO, or a link type such as MODEL / "IMAGE,MASK" / "*"
    required: bool
    default: Any = None
    min: int | float | None = None
    max: int | float | None = None
    step: int | float | None = None
    multiline: bool = False
    choices: tuple[Any, ...] = ()
    # The legacy combo form (a list of choices as the type): only then does the engine refuse other values.
    listed_choices: bool = False
    image_upload: bool = False
    upload: str | None = None  # "image" / "video" / "audio" / "file" for upload combos
    force_input: bool = False
    control_after_generate: bool = False
    tooltip: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_widget(self) -> bool:
        """A value typed into the node rather than a connection (unless forced to be an input)."""
        return self.type in WIDGET_TYPES and not self.force_input

    @property
    def is_link_type(self) -> bool:
        return self.type not in WIDGET_TYPES


def parse_input_spec(name: str, spec: object, *, required: bool) -> InputSpec:
    """Parse one ``/object_info`` input spec, tolerating missing or malformed option dicts."""
    if isinstance(spec, list | tuple) and spec:
        head: object = spec[0]
        opts_raw: object = spec[1] if len(spec) > 1 else None
    else:
        head, opts_raw = spec, None
    opts: dict[str, Any] = dict(opts_raw) if isinstance(opts_raw, Mapping) else {}

    choices: tuple[Any, ...] = ()
    listed = isinstance(head, list | tuple)
    if listed:
        type_name = "COMBO"  # legacy combo: the first element is the list of choices
        choices = tuple(head)
    else:
        type_name = str(head) if head is not None else "*"
        if type_name == "COMBO" and isinstance(opts.get("options"), list | tuple):
            choices = tuple(opts["options"])

    upload = next((kind for flag, kind in UPLOAD_FLAGS.items() if opts.get(flag) is True), None)
    tooltip = opts.get("tooltip")
    return InputSpec(
        name=name,
        type=type_name,
        required=required,
        default=opts.get("default"),
        min=_number(opts.get("min")),
        max=_number(opts.get("max")),
        step=_number(opts.get("step")),
        multiline=opts.get("multiline") is True,
        choices=choices,
        listed_choices=listed,
        image_upload=opts.get("image_upload") is True,
        upload=upload,
        force_input=opts.get("forceInput") is True,
        control_after_generate=bool(opts.get("control_after_generate")),
        tooltip=tooltip if isinstance(tooltip, str) else None,
        options=opts,
    )


@dataclass(frozen=True)
class NodeSchema:
    """What the engine declares about one node type."""

    class_type: str
    display_name: str
    category: str
    description: str
    inputs: tuple[InputSpec, ...]  # required first, then optional, each in the engine's order
    outputs: tuple[str, ...]  # output types by slot; list-valued (combo) outputs read "COMBO"
    output_names: tuple[str, ...]
    output_is_list: tuple[bool, ...]
    output_node: bool
    hidden_inputs: tuple[str, ...] = ()
    deprecated: bool = False
    api_node: bool = False

    def input(self, name: str) -> InputSpec | None:
        return next((spec for spec in self.inputs if spec.name == name), None)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.inputs)

    @property
    def widget_inputs(self) -> tuple[InputSpec, ...]:
        return tuple(spec for spec in self.inputs if spec.is_widget)


def _ordered_names(section: Mapping[str, Any], order: object) -> list[str]:
    # input_order is authoritative when present; fall back to the dict order (JSON keeps it).
    names = [n for n in order if n in section] if isinstance(order, list) else []
    return names + [n for n in section if n not in names]


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def parse_node_schema(class_type: str, info: Mapping[str, Any]) -> NodeSchema:
    """Parse one ``/object_info`` entry."""
    raw_inputs = _mapping(info.get("input"))
    raw_order = _mapping(info.get("input_order"))
    inputs: list[InputSpec] = []
    for section, required in (("required", True), ("optional", False)):
        specs = raw_inputs.get(section)
        if not isinstance(specs, Mapping):
            continue
        for name in _ordered_names(specs, raw_order.get(section)):
            inputs.append(parse_input_spec(name, specs[name], required=required))
    hidden = raw_inputs.get("hidden")

    raw_outputs = info.get("output")
    raw_outputs = raw_outputs if isinstance(raw_outputs, list | tuple) else ()
    outputs = tuple("COMBO" if isinstance(t, list | tuple) else str(t) for t in raw_outputs)
    names_raw = info.get("output_name")
    names = tuple(str(n) for n in names_raw) if isinstance(names_raw, list | tuple) else outputs
    is_list_raw = info.get("output_is_list")
    is_list = tuple(bool(x) for x in is_list_raw) if isinstance(is_list_raw, list | tuple) else ()

    def text(key: str, fallback: str = "") -> str:
        value = info.get(key)
        return value if isinstance(value, str) and value else fallback

    return NodeSchema(
        class_type=class_type,
        display_name=text("display_name", class_type),
        category=text("category"),
        description=text("description"),
        inputs=tuple(inputs),
        outputs=outputs,
        output_names=names,
        output_is_list=is_list,
        output_node=info.get("output_node") is True,
        hidden_inputs=tuple(hidden) if isinstance(hidden, Mapping) else (),
        deprecated=info.get("deprecated") is True,
        api_node=info.get("api_node") is True,
    )


class NodeCatalog:
    """All node types one engine offers, keyed by class_type."""

    def __init__(self, schemas: Mapping[str, NodeSchema]) -> None:
        self._schemas: dict[str, NodeSchema] = dict(schemas)

    @classmethod
    def from_object_info(cls, object_info: Mapping[str, Any]) -> NodeCatalog:
        """Build from the JSON of ``GET /object_info``; entries that are not objects are skipped."""
        return cls(
            {
                str(class_type): parse_node_schema(str(class_type), info)
                for class_type, info in object_info.items()
                if isinstance(info, Mapping)
            }
        )

    def get(self, class_type: str) -> NodeSchema | None:
        return self._schemas.get(class_type)

    def __getitem__(self, class_type: str) -> NodeSchema:
        return self._schemas[class_type]

    def __contains__(self, class_type: object) -> bool:
        return class_type in self._schemas

    def __iter__(self) -> Iterator[str]:
        return iter(self._schemas)

    def __len__(self) -> int:
        return len(self._schemas)
