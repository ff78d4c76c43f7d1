"""Pure workflow logic of Comfy Publisher: no web, DB or engine I/O (stdlib only).

Load an API-format workflow (or convert a UI-format one), read the engine's node catalog
(``/object_info``), validate the graph, find candidate inputs and outputs, apply a run's values
and isolate its output folder.
"""

from .apply import (
    AppliedPrompt,
    BindingError,
    InputBinding,
    InputValueError,
    InputValuesError,
    apply_values,
    bindings_from_candidates,
    check_bindings,
    draw_seed,
    slugify,
)
from .appspec import AppInput, AppOutput, AppSpec, AppSpecError, build_app_spec
from .candidates import TITLE_MARK, CandidateInput, candidate_type, find_candidates, suggested_candidates
from .models import ModelRef, find_model_refs
from .node_schema import InputSpec, NodeCatalog, NodeSchema, parse_input_spec, parse_node_schema
from .outputs import OutputNode, default_published_outputs, find_outputs
from .run_prefix import check_run_id, isolate_outputs, run_folder
from .ui_convert import convert_ui_workflow, load_any_workflow
from .validate import GraphProblem, GraphValidationError, check_graph, types_compatible, validate_graph
from .workflow import (
    UI_FORMAT_MESSAGE,
    Workflow,
    WorkflowFormatError,
    detect_format,
    is_link,
    load_workflow,
    node_sort_key,
)

__all__ = [
    "TITLE_MARK",
    "UI_FORMAT_MESSAGE",
    "AppInput",
    "AppOutput",
    "AppSpec",
    "AppSpecError",
    "AppliedPrompt",
    "BindingError",
    "CandidateInput",
    "GraphProblem",
    "GraphValidationError",
    "InputBinding",
    "InputSpec",
    "InputValueError",
    "InputValuesError",
    "ModelRef",
    "NodeCatalog",
    "NodeSchema",
    "OutputNode",
    "Workflow",
    "WorkflowFormatError",
    "apply_values",
    "bindings_from_candidates",
    "build_app_spec",
    "candidate_type",
    "check_bindings",
    "check_graph",
    "check_run_id",
    "convert_ui_workflow",
    "default_published_outputs",
    "detect_format",
    "draw_seed",
    "find_candidates",
    "find_model_refs",
    "find_outputs",
    "is_link",
    "isolate_outputs",
    "load_any_workflow",
    "load_workflow",
    "node_sort_key",
    "parse_input_spec",
    "parse_node_schema",
    "run_folder",
    "slugify",
    "suggested_candidates",
    "types_compatible",
    "validate_graph",
]
