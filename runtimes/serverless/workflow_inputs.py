"""A whole API-format graph as a deployment's typed inputs: the app's own workflow with only its published inputs
changed (publisher.app_workflow_guard), each file input resolved to the upload its value names, then the same
checks as the typed API. Modal's Comfy API v2 (files are assets) and RunPod's worker-comfyui shape (files come
in the request's "images") differ only in how a file's name becomes its bytes: the caller's `upload_of`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from publisher import AppSpec
from publisher.app_workflow_guard import app_values_from_workflow
from publisher.apply import FILE_TYPES
from publisher.appspec import AppInput
from runtimes.inputs import ImageLimits, check_values, split_json_inputs

DEFAULT_LIMITS = ImageLimits()

# The upload a file input's value names, as base64 text; None keeps the app's own file. Raises (the caller's own
# error type) for a value it cannot resolve.
UploadOf = Callable[[AppInput, Any], Awaitable[str | None]]


async def inputs_from_workflow(spec: AppSpec, workflow: dict[str, Any], upload_of: UploadOf,
                               limits: ImageLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    """The typed API's inputs (uploads as base64) for a submitted graph. Raises AppWorkflowError (every difference
    that may not be), WorkflowFormatError (no API-format graph at all) or InputProblems (values or files that do
    not fit, as the typed API says it)."""
    values = app_values_from_workflow(spec, workflow)
    inputs: dict[str, Any] = {}
    for item in spec.inputs:
        if item.name not in values:
            continue
        value = values[item.name]
        if item.type not in FILE_TYPES:
            inputs[item.name] = value
        elif (encoded := await upload_of(item, value)) is not None:
            inputs[item.name] = encoded
    values_only, uploads, problems = split_json_inputs(spec, inputs, limits)
    check_values(spec, values_only, {name: filename for name, (filename, _) in uploads.items()}, problems)
    return inputs


def where(item: AppInput) -> str:
    """How an error names a published input in a graph."""
    return f"node {item.node} input '{item.input}' (the app's input '{item.name}')"


def node_errors(spec: AppSpec, problems: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """InputProblems' problems by node id, in the shape of AppWorkflowError.node_errors()."""
    found: dict[str, list[dict[str, Any]]] = {}
    for problem in problems:
        item = spec.input(str(problem.get("input")))
        node = problem.get("node") or (item.node if item else None)
        if node is None:
            continue
        entry = {"field": problem.get("node_input") or (item.input if item else None), "reason": "invalid_value",
                 "message": problem["message"]}
        if problem.get("allowed") is not None:
            entry["allowed"] = problem["allowed"]
        found.setdefault(str(node), []).append(entry)
    return found
