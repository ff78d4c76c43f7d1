"""A RunPod job's input as a run of the app baked into the image. Two shapes are taken:

    A. typed:          {"inputs": {NAME: value, ...}, "run_id"?: str}
       values as the app's typed REST API takes them (a file input: base64, a data: URL, or the app's own file name)
    B. worker-comfyui: {"workflow": API-format graph, "images"?: [{"name": file, "image": base64 or data: URL}]}
       the app's own graph with only its published inputs changed; an image in "images" is the upload for the
       published input whose value is its name

`job["input"]` may also be JSON text. Anything wrong raises RequestRefused with the run's error record (a message
for people, details for programs), before the engine sees anything.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from publisher import AppSpec
from publisher.app_workflow_guard import AppWorkflowError
from publisher.apply import FILE_TYPES
from publisher.appspec import AppInput
from publisher.quoting import quote
from publisher.run_prefix import check_run_id
from publisher.workflow import WorkflowFormatError, json_type
from runtimes.contract import ErrorRecord, RunRequest, run_error
from runtimes.inputs import ImageLimits, InputProblems, check_upload, check_values, own_files, split_json_inputs
from runtimes.serverless.wire import request_from_payload
from runtimes.serverless.workflow_inputs import inputs_from_workflow, node_errors, where

DEFAULT_LIMITS = ImageLimits()
TYPED_KEYS = ("inputs", "run_id")
WORKFLOW_KEYS = ("workflow", "images", "run_id")
HOW = ('send {"input": {"inputs": {NAME: value, ...}}} (the app\'s typed inputs) or {"input": {"workflow": '
       '<the app\'s API-format graph>, "images": [{"name": ..., "image": <base64>}]}} (worker-comfyui\'s shape)')


class RequestRefused(Exception):
    """A job this worker will not run, with the error record its output carries."""

    def __init__(self, record: ErrorRecord, run_id: str | None = None) -> None:
        super().__init__(record["message"])
        self.record, self.run_id = record, run_id


def refused(type: str, message: str, details: Any = None) -> RequestRefused:
    return RequestRefused(run_error(type, message, details=details))


async def run_request(spec: AppSpec, job: Mapping[str, Any], limits: ImageLimits = DEFAULT_LIMITS) -> RunRequest:
    """The job's run, checked as the app's typed API checks one (values, files by kind, size, pixels)."""
    body = job_input(job)
    run_id = _run_id(body.get("run_id"), str(job.get("id") or ""))
    try:
        if "workflow" in body:
            _only(body, WORKFLOW_KEYS, "worker-comfyui's shape")
            inputs = await workflow_inputs(spec, body["workflow"], body.get("images"), limits)
        elif "inputs" in body:
            _only(body, TYPED_KEYS, "the typed shape")
            inputs = body["inputs"]
            if not isinstance(inputs, dict):
                raise refused("invalid_request", f"'inputs' must be an object of the app's input values by name, "
                                                 f"not {json_type(inputs)}; {_listing(spec)}")
        else:
            raise refused("invalid_request", f"The input has neither 'inputs' nor 'workflow': {HOW}.")
        return typed_request(spec, run_id, inputs, limits)
    except RequestRefused as exc:
        exc.run_id = run_id
        raise


def job_input(job: Mapping[str, Any]) -> dict[str, Any]:
    raw = job.get("input")
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise refused("invalid_request", f"The input is text that is not valid JSON ({exc}): {HOW}.") from None
    if not isinstance(raw, dict) or not raw:
        raise refused("invalid_request", f"The job has no input object: {HOW}.")
    return raw


def typed_request(spec: AppSpec, run_id: str, inputs: dict[str, Any], limits: ImageLimits = DEFAULT_LIMITS
                  ) -> RunRequest:
    """The typed API's checks, every problem at once, then the same RunRequest a Modal worker builds."""
    values, uploads, problems = split_json_inputs(spec, inputs, limits)
    try:
        check_values(spec, values, {name: filename for name, (filename, _) in uploads.items()}, problems)
        return request_from_payload(spec, run_id, inputs)
    except InputProblems as exc:
        raise _input_error(spec, exc) from None


async def workflow_inputs(spec: AppSpec, workflow: Any, images: Any, limits: ImageLimits = DEFAULT_LIMITS
                          ) -> dict[str, Any]:
    """worker-comfyui's shape as typed inputs: the graph guarded, each file input bound to its image."""
    if not isinstance(workflow, dict):
        raise refused("invalid_request", f"'workflow' must be the app's API-format graph (an object of node id -> "
                                         f"{{\"class_type\", \"inputs\"}}), not {json_type(workflow)}; in ComfyUI: "
                                         "Export (API)")
    named = _images(images)
    used: set[str] = set()

    async def upload_of(item: AppInput, value: Any) -> str | None:
        if isinstance(value, str) and value in named:
            used.add(value)
            return _checked_image(item, value, named[value], limits)
        if isinstance(value, str) and value in own_files(spec, item.name):
            return None  # the app's own file, as published
        sent = quote(value) if isinstance(value, str) else json_type(value)
        raise InputProblems([{"input": item.name, "node": item.node, "node_input": item.input,
                              "message": f"{where(item)} is {sent}, which names no entry of 'images' and is not "
                                         f"the app's own file: add {{\"name\": {quote(str(value))}, \"image\": "
                                         "<base64 or data: URL>} to 'images', or keep the app's value"}])

    try:
        inputs = await inputs_from_workflow(spec, workflow, upload_of, limits)
    except AppWorkflowError as exc:
        raise refused("invalid_workflow", str(exc), {"node_errors": exc.node_errors()}) from None
    except WorkflowFormatError as exc:
        raise refused("invalid_workflow", str(exc)) from None
    except InputProblems as exc:
        raise _input_error(spec, exc) from None
    if unused := [name for name in named if name not in used]:
        file_inputs = [f"'{i.name}' (node {i.node} input '{i.input}')" for i in spec.inputs if i.type in FILE_TYPES]
        listing = ("the app's file inputs are: " + ", ".join(file_inputs)) if file_inputs else \
            "this app has no file inputs"
        raise refused("input_error", f"'images' has {', '.join(quote(n) for n in unused)}, which no published "
                                     f"input of the workflow names: set a file input's value to the image's name, "
                                     f"or leave the image out; {listing}", {"unused_images": unused})
    return inputs


def _images(images: Any) -> dict[str, str]:
    """'images' by name: a list of {"name", "image"} (worker-comfyui's own rule and message)."""
    if images is None:
        return {}
    shape = "'images' must be a list of objects with 'name' and 'image' keys"
    if not isinstance(images, list):
        raise refused("invalid_request", f"{shape}, not {json_type(images)}")
    named: dict[str, str] = {}
    for index, entry in enumerate(images):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"] \
                or not isinstance(entry.get("image"), str) or set(entry) - {"name", "image"}:
            raise refused("invalid_request", f"{shape}: images[{index}] is not one (its 'name' a file name, its "
                                             "'image' base64 or a data: URL, nothing else)")
        if entry["name"] in named:
            raise refused("invalid_request", f"{shape}: images[{index}] repeats the name {quote(entry['name'])}; "
                                             "each image needs its own name")
        named[entry["name"]] = entry["image"]
    return named


def _checked_image(item: AppInput, name: str, text: str, limits: ImageLimits) -> str:
    """An entry of 'images' for a file input: its bytes checked by the input's kind, under the entry's name (so a
    refusal names the file the caller sent). Returns the base64 text, as the typed API takes a file."""
    encoded = text.partition(",")[2] if text.startswith("data:") else text
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InputProblems([{"input": item.name, "node": item.node, "node_input": item.input,
                              "message": f"the image {quote(name)} in 'images' is not base64: send the file's "
                                         "bytes as base64 (a data: URL works)"}]) from None
    try:
        check_upload(item.name, item.type, name, data, limits)
    except InputProblems as exc:
        raise InputProblems([{**p, "node": item.node, "node_input": item.input,
                              "message": f"{where(item)}: {p['message']}"} for p in exc.problems]) from None
    return encoded


def _input_error(spec: AppSpec, exc: InputProblems) -> RequestRefused:
    return refused("input_error", f"The inputs do not fit this app: {exc}",
                   {"errors": exc.problems, "node_errors": node_errors(spec, exc.problems)})


def _only(body: dict[str, Any], allowed: tuple[str, ...], shape: str) -> None:
    extra = [key for key in body if key not in allowed]
    if not extra:
        return
    hint = ""
    if "comfy_org_api_key" in extra:
        hint = " (this app's engine runs no API nodes: a Comfy.org key is of no use to it)"
    elif "inputs" in extra or "workflow" in extra:
        hint = " ('inputs' and 'workflow' are two shapes of a request: send one)"
    raise refused("invalid_request", f"{', '.join(quote(k) for k in extra)} {'is' if len(extra) == 1 else 'are'} "
                                     f"not taken with {shape}{hint}: it takes {', '.join(allowed)}.")


def _run_id(given: Any, job_id: str) -> str:
    """The caller's run id, or one from the job's (unique per run: a job retried under its id runs anew)."""
    if given is not None:
        try:
            check_run_id(given)
        except ValueError as exc:
            raise refused("invalid_request", f"'run_id': {exc}") from None
        return str(given)
    base = re.sub(r"[^A-Za-z0-9_-]", "_", job_id)[:100] or "job"
    return f"{base}-{uuid.uuid4().hex[:8]}"


def _listing(spec: AppSpec) -> str:
    if not spec.inputs:
        return "this app has no inputs"
    return "the app's inputs are: " + ", ".join(f"'{i.name}' ({i.type})" for i in spec.inputs)

