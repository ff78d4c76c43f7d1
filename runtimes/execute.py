"""One published run on one engine: upload its files, apply its values, run it, fetch its outputs.

No database or web code here: the same function runs inside the app's worker pool and inside a
serverless container next to its own engine.
"""

from __future__ import annotations

import asyncio
from typing import Any

from publisher import (
    InputValueError,
    InputValuesError,
    NodeCatalog,
    apply_values,
    isolate_outputs,
    load_workflow,
    node_sort_key,
    run_folder,
)
from publisher.file_paths import path_problems
from publisher.frontend_values import run_prompt
from runtimes.comfy.client import ComfyClient, EventCallback, OutputFile
from runtimes.comfy.errors import (
    ComfyError,
    EngineConnectionLostError,
    EngineRequestError,
    EngineUnavailableError,
    ExecutionFailedError,
    PromptLostError,
    PromptValidationError,
    RunInterruptedError,
    RunTimeoutError,
)
from runtimes.contract import (
    ErrorRecord,
    OutputFileKind,
    RunOutcome,
    RunOutput,
    RunRequest,
    read_upload,
    run_error,
)
from runtimes.files import safe_filename
from runtimes.media_types import OCTET_STREAM, mime_of
from runtimes.outputs_metadata import strip_metadata

# How long to wait for the engine to really stop a prompt we gave up on (it finishes the current
# sampler step first) before the caller may hand the engine its next run.
STOP_GRACE_S = 30.0

# The key a node's history output lists files under, when the file name says nothing.
_KIND_BY_HISTORY_KEY: dict[str, OutputFileKind] = {
    "images": "image",
    "gifs": "video",
    "video": "video",
    "videos": "video",
    "audio": "audio",
}

# The engine went away under the run: its work is lost, but the run itself may well succeed elsewhere.
ENGINE_LOST_ERRORS = (PromptLostError, EngineConnectionLostError, EngineUnavailableError)
TRACEBACK_LINES = 40  # of a failing node's traceback kept in an error record


async def execute_run(
    client: ComfyClient,
    catalog: NodeCatalog,
    request: RunRequest,
    on_event: EventCallback | None = None,
) -> RunOutcome:
    """Run one request to the end; raises the client's typed errors or :class:`InputValuesError`.

    A run that times out or whose task is cancelled is stopped on the engine before the error
    propagates, so the engine is free for the next run when this returns.
    """
    run_id = request.run_id
    folder = run_folder(run_id)  # validates the id before anything reaches the engine
    workflow = request.loaded or load_workflow(request.workflow)
    _check_upload_names(request)
    try:
        values = dict(request.values)
        for name, (filename, data) in request.uploads.items():
            values[name] = await client.upload_image(await read_upload(data), safe_filename(filename, "upload"),
                                                     subfolder=folder)
        applied = apply_values(workflow, request.bindings, values)
        # what the editor does when it queues, done per run: %date:…% filled in, dynamic prompts' {a|b} picked
        finished, applied_values = run_prompt(applied.prompt, catalog, request.bindings, values, applied.values)
        prompt = isolate_outputs(finished, catalog, run_id)
        if escaping := path_problems(prompt, catalog):  # a version published before publishing checked paths
            raise ValueError("; ".join(escaping))
        output_nodes = [n for n in prompt if (schema := catalog.get(prompt[n]["class_type"])) and schema.output_node]
        result = await client.run(prompt, prompt_id=run_id, on_event=on_event, timeout=request.timeout_s,
                                  output_nodes=output_nodes, extra_data=request.extra_data)
        files = _published(result.outputs, request.output_nodes)
        contents = await asyncio.gather(*(client.fetch_output(f) for f in files))
    except (RunTimeoutError, asyncio.CancelledError):
        await stop_on_engine(client, run_id)
        raise
    outputs = [_run_output(f, data, request.keep_metadata) for f, data in zip(files, contents, strict=True)]
    return RunOutcome(run_id=run_id, applied=applied_values, outputs=outputs, exec_ms=result.exec_ms)


async def stop_on_engine(client: ComfyClient, prompt_id: str, grace_s: float = STOP_GRACE_S) -> str:
    """Delete or interrupt a prompt and wait until the engine no longer runs it; best effort.

    Returns the client's answer ('deleted', 'interrupted', 'not_found'), or 'unreachable'.
    """
    try:
        async with asyncio.timeout(grace_s):
            state = await client.cancel(prompt_id)
            # The engine lists an interrupted prompt as running until its last step is done.
            while state == "interrupted" and await client.where(prompt_id) is not None:
                await asyncio.sleep(0.05)
            return state
    except (ComfyError, TimeoutError):
        return "unreachable"


def _check_upload_names(request: RunRequest) -> None:
    # Refuse before uploading anything: a wrong name would otherwise leave a stray file on the engine.
    known = {b.name for b in request.bindings}
    unknown = [name for name in request.uploads if name not in known]
    if unknown:
        raise InputValuesError(
            InputValueError(name, "an upload for an input this app does not have", allowed=tuple(sorted(known)))
            for name in unknown
        )


def _published(outputs: list[OutputFile], output_nodes: tuple[str, ...]) -> list[OutputFile]:
    """The files of the published nodes, in publishing order (node id order when all are published)."""
    if not output_nodes:
        return sorted(outputs, key=lambda f: node_sort_key(f.node_id))  # stable: keeps each node's file order
    rank = {node_id: i for i, node_id in enumerate(output_nodes)}
    return sorted((f for f in outputs if f.node_id in rank), key=lambda f: rank[f.node_id])


def _run_output(output: OutputFile, data: bytes, keep_metadata: bool) -> RunOutput:
    mime = mime_of(output.filename)
    if not keep_metadata:  # here, where the app's engines and a deployment's containers both pass
        data = strip_metadata(data, mime)
    major = mime.split("/", 1)[0]
    kind: OutputFileKind
    if major in ("image", "video", "audio"):
        kind = major  # type: ignore[assignment]
    else:
        kind = _KIND_BY_HISTORY_KEY.get(output.kind, "file") if mime == OCTET_STREAM else "file"
    return RunOutput(node_id=output.node_id, filename=output.filename, kind=kind, mime=mime, data=data)


def error_record(exc: BaseException, request: RunRequest | None = None) -> ErrorRecord:
    """A failure of :func:`execute_run` as the run's error record.

    Keys: type (what kind of failure: validation_error, execution_error, input_error, timeout,
    interrupted, engine_lost, engine_error, invalid_request, internal_error), message (for people),
    node_id / node_type / input (where, when known), details (machine-readable extras).
    """
    record = run_error("internal_error", f"{type(exc).__name__}: {exc}")
    match exc:
        case PromptValidationError():
            record.update(type="validation_error", message=str(exc),
                          details={"error_type": exc.type, "problems": [
                              {"node_id": p.node_id, "node_type": p.node_type, "input": p.input_name,
                               "type": p.type, "message": p.message, "details": p.details}
                              for p in exc.problems]})
            if exc.problems:
                first = exc.problems[0]
                record.update(node_id=first.node_id, node_type=first.node_type, input=first.input_name)
        case ExecutionFailedError():
            record.update(type="execution_error", message=str(exc), node_id=exc.node_id, node_type=exc.node_type,
                          details={"exception_type": exc.exception_type, "exception_message": exc.message,
                                   "traceback": exc.traceback[-TRACEBACK_LINES:]})
        case InputValuesError():
            first_value = exc.errors[0] if exc.errors else None
            node_type = None
            if first_value is not None and first_value.node is not None and request is not None:
                node_type = (request.workflow.get(first_value.node) or {}).get("class_type")
            record.update(type="input_error", message=str(exc), node_type=node_type,
                          node_id=first_value.node if first_value else None,
                          input=first_value.input if first_value else None,
                          details={"errors": [{"input": e.input, "node_id": e.node, "node_input": e.node_input,
                                               "message": e.message, "allowed": _jsonable(e.allowed)}
                                              for e in exc.errors]})
        case RunTimeoutError():
            record.update(type="timeout", message=str(exc), details={"seconds": exc.seconds, "what": exc.what})
        case RunInterruptedError():
            record.update(type="interrupted", node_id=exc.node_id,
                          message=f"{exc} Someone stopped it on the engine (not through this app).")
        case PromptLostError() | EngineConnectionLostError() | EngineUnavailableError():
            record.update(type="engine_lost", message=str(exc))
        case EngineRequestError():
            record.update(type="engine_error", message=str(exc), details={"status": exc.status, "path": exc.path})
        case ValueError():  # a malformed request: bad run id, workflow or bindings
            record.update(type="invalid_request", message=str(exc))
    return record


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
