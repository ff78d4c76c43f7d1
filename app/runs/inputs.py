"""A submission's inputs, from a JSON body (files as base64), a multipart form (files as file parts) or Python
values (the generated forms, the studio), checked against the app version's inputs before anything is queued:
every problem raises InputProblems naming the input. The file checks (by kind: image, mask, video, audio, file) and
the value checks are runtimes.inputs', the same a deployment's endpoint uses; a file input's value is checked there
too (an upload of this run or the app's own file), whichever way it came."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.datastructures import FormData, UploadFile

from publisher import AppSpec
from runtimes.inputs import (
    ImageLimits,
    InputProblems,
    check_upload,
    check_values,
    split_json_inputs,
    upload_kind,
)


@dataclass(frozen=True)
class RunInputs:
    values: dict[str, Any]  # checked, the drawn seeds included
    uploads: dict[str, tuple[str, bytes]]  # input name -> (file name, bytes), checked by the input's kind
    webhook: str | None


class InputSource(Protocol):
    """Inputs as they came in; parsed against the version's spec in the submission's database trip (a worker
    thread), once the version is known."""

    def parse(self, spec: AppSpec, limits: ImageLimits) -> RunInputs: ...


@dataclass(frozen=True)
class JsonBody:
    """`{"inputs": {...}, "webhook": url?}`, as raw bytes."""

    body: bytes

    def parse(self, spec: AppSpec, limits: ImageLimits) -> RunInputs:
        try:
            data = json.loads(self.body) if self.body else {}
        except ValueError:
            raise InputProblems([{"input": "(body)", "message": "the body is not valid JSON"}]) from None
        except RecursionError:
            raise InputProblems([_TOO_DEEP]) from None
        try:
            return parse_json_body(spec, data, limits)
        except RecursionError:  # a value nested deep enough to parse, but not to be walked by the checks
            raise InputProblems([_TOO_DEEP]) from None


_TOO_DEEP = {"input": "(body)", "message": "the body is nested too deeply: input values are flat (a number, a "
                                           "text, an image as base64), not objects in objects"}


@dataclass(frozen=True)
class FormFields:
    """Multipart form fields and files (read by the web server already; files spooled to disk)."""

    form: FormData

    def parse(self, spec: AppSpec, limits: ImageLimits) -> RunInputs:
        try:
            return parse_form(spec, self.form, limits)
        except RecursionError:  # the 'inputs' field's JSON, nested past what can be parsed or walked
            raise InputProblems([_TOO_DEEP]) from None


@dataclass(frozen=True)
class GivenValues:
    """Python values and files, from a form or the studio."""

    values: dict[str, Any]
    files: dict[str, tuple[str, bytes]]

    def parse(self, spec: AppSpec, limits: ImageLimits) -> RunInputs:
        return parse_values(spec, self.values, self.files, limits)


def parse_json_body(spec: AppSpec, body: Any, limits: ImageLimits) -> RunInputs:
    if not isinstance(body, dict):
        raise InputProblems([{"input": "(body)", "message": 'the body must be a JSON object: {"inputs": {...}}'}])
    unknown = sorted(set(body) - {"inputs", "webhook"})
    if unknown:
        raise InputProblems([{"input": "(body)", "message": f"unknown field(s) {unknown}; the body holds "
                                                           "'inputs' (an object) and optionally 'webhook'"}])
    raw = body.get("inputs") or {}
    if not isinstance(raw, dict):
        raise InputProblems([{"input": "inputs", "message": "must be an object of input name -> value"}])
    values, uploads, problems = split_json_inputs(spec, raw, limits)
    return _checked(spec, values, uploads, _webhook(body.get("webhook")), problems)


def parse_form(spec: AppSpec, form: FormData, limits: ImageLimits) -> RunInputs:
    """Reads the uploaded files (spooled by the web server): call it from a worker thread."""
    values: dict[str, Any] = {}
    uploads: dict[str, tuple[str, bytes]] = {}
    problems: list[dict[str, Any]] = []
    webhook = None
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
            if (problem := _not_a_file_input(spec, name)) is not None:
                problems.append(problem)
                continue
            value.file.seek(0)
            data = value.file.read(limits.bytes_for(upload_kind(spec, name) or "file") + 1)
            _check_into(uploads, problems, spec, name, value.filename or "upload", data, limits)
        else:
            values[name] = value
    return _checked(spec, values, uploads, _webhook(webhook), problems)


def parse_values(spec: AppSpec, values: dict[str, Any], files: dict[str, tuple[str, bytes]],
                 limits: ImageLimits) -> RunInputs:
    """Inputs from Python values and files (the generated forms, the studio): the same checks as the API's."""
    uploads: dict[str, tuple[str, bytes]] = {}
    problems: list[dict[str, Any]] = []
    for name, (filename, data) in files.items():
        if (problem := _not_a_file_input(spec, name)) is not None:
            problems.append(problem)
        else:
            _check_into(uploads, problems, spec, name, filename, data, limits)
    return _checked(spec, dict(values), uploads, None, problems)


def _not_a_file_input(spec: AppSpec, name: str) -> dict[str, Any] | None:
    if upload_kind(spec, name) is not None:
        return None
    item = spec.input(name)
    if item is None:
        files = sorted(i.name for i in spec.inputs if upload_kind(spec, i.name) is not None)
        return {"input": name, "message": "a file was sent for an input this app does not have"
                                          + (f"; its file inputs are {', '.join(files)}" if files else
                                             "; it takes no files"), "allowed": files}
    return {"input": name, "node": item.node, "node_input": item.input,
            "message": f"a file was sent, but this is a {item.type} input, which takes a value (a form field or "
                       "JSON), not a file; files go to image, mask, video, audio and file inputs"}


def _check_into(uploads: dict[str, tuple[str, bytes]], problems: list[dict[str, Any]], spec: AppSpec, name: str,
                filename: str, data: bytes, limits: ImageLimits) -> None:
    try:
        uploads[name] = check_upload(name, upload_kind(spec, name) or "file", filename, data, limits)
    except InputProblems as exc:
        problems += exc.problems


def _webhook(value: Any) -> str | None:
    return str(value) if value else None


def _checked(spec: AppSpec, values: dict[str, Any], uploads: dict[str, tuple[str, bytes]], webhook: str | None,
             problems: list[dict[str, Any]]) -> RunInputs:
    names = {name: filename for name, (filename, _) in uploads.items()}
    return RunInputs(check_values(spec, values, names, problems), uploads, webhook)
