"""A run request's inputs, from JSON (images as base64) or multipart (images as files), checked against
the app version's inputs before anything is queued: every problem answers 422 naming the input."""

from __future__ import annotations

import base64
import binascii
import io
import json
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError
from starlette.datastructures import UploadFile

from publisher import AppSpec, InputValueError, InputValuesError, apply_values, load_workflow

MAX_PIXELS = 8192 * 8192
IMAGE_FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff"}


@dataclass
class RunInputs:
    values: dict[str, Any]
    uploads: dict[str, tuple[str, bytes]]
    webhook: str | None


class InputProblems(ValueError):
    """Everything wrong with a request's inputs: [{input, message, allowed?}]."""

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p['input']}: {p['message']}" for p in problems))


def parse_json_body(spec: AppSpec, body: Any, max_upload_bytes: int) -> RunInputs:
    if not isinstance(body, dict):
        raise InputProblems([{"input": "(body)", "message": 'the body must be a JSON object: {"inputs": {...}}'}])
    unknown = sorted(set(body) - {"inputs", "webhook"})
    if unknown:
        raise InputProblems([{"input": "(body)", "message": f"unknown field(s) {unknown}; the body holds "
                                                           "'inputs' (an object) and optionally 'webhook'"}])
    raw = body.get("inputs") or {}
    if not isinstance(raw, dict):
        raise InputProblems([{"input": "inputs", "message": "must be an object of input name -> value"}])
    values, uploads, problems = {}, {}, []
    for name, value in raw.items():
        item = spec.input(name)
        if item is not None and item.type == "image" and isinstance(value, str) and value:
            try:
                uploads[name] = _decode_image(name, value, max_upload_bytes)
            except InputProblems as exc:
                problems += exc.problems
        else:
            values[name] = value
    return _checked(spec, RunInputs(values, uploads, _webhook(body.get("webhook"))), problems)


async def parse_form(spec: AppSpec, form: Any, max_upload_bytes: int) -> RunInputs:
    values, uploads, problems, webhook = {}, {}, [], None
    for name, value in form.multi_items():
        if name == "webhook":
            webhook = str(value)
        elif name == "inputs":  # a JSON object of the non-file inputs, as an alternative to one field each
            try:
                parsed = json.loads(str(value))
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                values.update(parsed)
            else:
                problems.append({"input": "inputs", "message": "the 'inputs' form field must be a JSON object"})
        elif isinstance(value, UploadFile):
            item = spec.input(name)
            if item is None or item.type != "image":
                problems.append({"input": name, "message": "a file was sent, but this input is not an image input"})
                continue
            data = await value.read(max_upload_bytes + 1)
            try:
                uploads[name] = _check_image(name, value.filename or "upload", data, max_upload_bytes)
            except InputProblems as exc:
                problems += exc.problems
        elif (item := spec.input(name)) is not None and item.type == "image":
            # A name instead of a file would point the engine at whatever sits in its input folder.
            problems.append({"input": name, "message": "send the image as a file part, not as text"})
        else:
            values[name] = value
    return _checked(spec, RunInputs(values, uploads, _webhook(webhook)), problems)


def _webhook(value: Any) -> str | None:
    return str(value) if value else None


def _decode_image(name: str, value: str, max_bytes: int) -> tuple[str, bytes]:
    encoded = value.partition(",")[2] if value.startswith("data:") else value
    if len(encoded) > max_bytes * 4 // 3 + 4:
        raise InputProblems([{"input": name, "message": f"the image is larger than {max_bytes // 2**20} MiB"}])
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InputProblems([{"input": name, "message": "not base64: send the image as base64 (a data: URL "
                                                        "works) or as a multipart file"}]) from None
    return _check_image(name, "upload", data, max_bytes)


def _check_image(name: str, filename: str, data: bytes, max_bytes: int) -> tuple[str, bytes]:
    """Size and type are checked here, at the boundary: the engine only ever gets real images."""
    if len(data) > max_bytes:
        raise InputProblems([{"input": name, "message": f"the file is larger than {max_bytes // 2**20} MiB"}])
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
            kind = image.format or ""
            pixels = image.width * image.height
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise InputProblems([{"input": name, "message": f"{filename!r} is not an image this app accepts",
                              "allowed": sorted(IMAGE_FORMATS)}]) from None
    if pixels > MAX_PIXELS:
        raise InputProblems([{"input": name, "message": f"the image has {pixels} pixels; at most {MAX_PIXELS} "
                                                        "are accepted (e.g. 8192 x 8192)"}])
    if kind not in IMAGE_FORMATS:
        raise InputProblems([{"input": name, "message": f"image format {kind} is not accepted",
                              "allowed": sorted(IMAGE_FORMATS)}])
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    return f"{stem}.{IMAGE_FORMATS[kind]}", data


def _problem(error: InputValueError) -> dict[str, Any]:
    problem: dict[str, Any] = {"input": error.input, "message": error.message}
    if error.node is not None:
        problem.update(node=error.node, node_input=error.node_input)
    if error.allowed is not None:
        problem["allowed"] = list(error.allowed) if isinstance(error.allowed, tuple) else error.allowed
    return problem


def _checked(spec: AppSpec, inputs: RunInputs, problems: list[dict[str, Any]]) -> RunInputs:
    """Dry-run the values through the same code that will apply them, so errors come now, not later."""
    trial = {**inputs.values, **{name: filename for name, (filename, _) in inputs.uploads.items()}}
    try:
        applied = apply_values(load_workflow(spec.workflow), spec.inputs, trial)
    except InputValuesError as exc:
        problems += [_problem(e) for e in exc.errors]
    if problems:
        raise InputProblems(problems)
    # The seed is drawn once, here, and recorded with the run: a retry or a re-run after a restart
    # then produces the same image, and a failed run still says which seed it used.
    seeds = {i.name: applied.values[i.name] for i in spec.inputs if i.type == "seed" and i.name in applied.values}
    return RunInputs({**inputs.values, **seeds}, inputs.uploads, inputs.webhook)


def parse_values(spec: AppSpec, values: dict[str, Any], files: dict[str, tuple[str, bytes]],
                 max_upload_bytes: int) -> RunInputs:
    """Inputs from Python values and image files (the generated forms): the same checks as the API's."""
    uploads, problems = {}, []
    for name, (filename, data) in files.items():
        try:
            uploads[name] = _check_image(name, filename, data, max_upload_bytes)
        except InputProblems as exc:
            problems += exc.problems
    return _checked(spec, RunInputs(dict(values), uploads, None), problems)
