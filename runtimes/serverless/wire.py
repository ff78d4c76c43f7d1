"""What travels between the app, a deployment's endpoint and its worker containers (Modal's or RunPod's): plain
JSON.

Images go as base64 (data: URLs accepted), as they do in the app's own REST API, and are checked by the same
decoder (size, real image type, pixels) on both sides. Outputs come back base64-encoded in the worker's result and
are served as bytes by the endpoint.
"""

from __future__ import annotations

import base64
from typing import Any

from publisher import AppSpec
from runtimes.contract import FINAL_STATUSES, RunOutcome, RunOutput, RunRequest, read_upload
from runtimes.inputs import InputProblems, foreign_file_problems, split_json_inputs

# Besides a run's own final statuses, a deployment answers "expired": providers keep results for a limited time.
EXPIRED = "expired"
REMOTE_FINAL_STATUSES = FINAL_STATUSES | {EXPIRED}


def request_from_payload(spec: AppSpec, run_id: str, inputs: dict[str, Any]) -> RunRequest:
    """A RunRequest of the app baked into the image: callers send values, never a workflow. Raises InputProblems
    for an image that is not one (or too large)."""
    values, uploads, problems = split_json_inputs(spec, inputs)
    problems += foreign_file_problems(spec, values)  # the worker too, whoever calls it: no other run's files
    if problems:
        raise InputProblems(problems)
    return RunRequest(run_id=run_id, workflow=spec.workflow, bindings=spec.inputs, values=values,
                      uploads=dict(uploads), output_nodes=spec.output_nodes, timeout_s=spec.timeout_s,
                      keep_metadata=spec.keep_metadata, loaded=spec.loaded_workflow)


async def inputs_of(request: RunRequest) -> dict[str, Any]:
    """A request's values and uploads as one JSON inputs object (uploads as base64)."""
    uploads = {name: base64.b64encode(await read_upload(data)).decode() for name, (_, data) in request.uploads.items()}
    return {**request.values, **uploads}


def outcome_to_result(outcome: RunOutcome) -> dict[str, Any]:
    return {
        "status": "succeeded", "run_id": outcome.run_id, "applied": outcome.applied, "exec_ms": outcome.exec_ms,
        "outputs": [{"node_id": o.node_id, "filename": o.filename, "kind": o.kind, "mime": o.mime,
                     "data": base64.b64encode(o.data).decode()} for o in outcome.outputs],
    }


def outcome_from_result(result: dict[str, Any], outputs: list[bytes] | None = None) -> RunOutcome:
    """Back to a RunOutcome; `outputs` replaces the inline data when the files were fetched one by one."""
    items = result.get("outputs") or []
    datas = outputs if outputs is not None else [base64.b64decode(o["data"]) for o in items]
    return RunOutcome(
        run_id=result["run_id"], applied=result.get("applied") or {}, exec_ms=result.get("exec_ms"),
        outputs=[RunOutput(node_id=o["node_id"], filename=o["filename"], kind=o["kind"], mime=o["mime"], data=d)
                 for o, d in zip(items, datas, strict=True)],
    )
