"""What travels between the app, a deployment's endpoint and its worker containers: plain JSON.

Images go as base64 (data: URLs accepted), as they do in the app's own REST API. Outputs come back
base64-encoded in the worker's result and are served as bytes by the endpoint.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from publisher import AppSpec
from runtimes.execute import RunOutcome, RunOutput, RunRequest, Upload, read_upload


class PayloadError(ValueError):
    """A run payload that cannot be turned into a run; `problems` lists [{input, message}]."""

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p['input']}: {p['message']}" for p in problems))


def decode_image(name: str, value: str) -> bytes:
    encoded = value.partition(",")[2] if value.startswith("data:") else value
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise PayloadError([{"input": name, "message": "not base64: send the image as base64 or a data: URL"}]) \
            from None


def request_from_payload(spec: AppSpec, run_id: str, inputs: dict[str, Any]) -> RunRequest:
    """A RunRequest of the app baked into the image: callers send values, never a workflow."""
    values: dict[str, Any] = {}
    uploads: dict[str, Upload] = {}
    for name, value in inputs.items():
        item = spec.input(name)
        if item is not None and item.type == "image" and isinstance(value, str) and value:
            uploads[name] = (f"{name}.png", decode_image(name, value))
        else:
            values[name] = value
    return RunRequest(run_id=run_id, workflow=spec.workflow, bindings=spec.inputs, values=values, uploads=uploads,
                      output_nodes=spec.output_nodes, timeout_s=spec.timeout_s)


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
