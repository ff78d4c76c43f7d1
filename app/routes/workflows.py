"""POST /api/workflows/analyze: what a workflow is made of and which inputs could be published."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, HTTPException, status

from app.deps import AdminDep, ServicesDep
from app.schemas import AnalyzeRequest
from publisher import (
    WorkflowFormatError,
    detect_format,
    find_candidates,
    find_model_refs,
    find_outputs,
    load_workflow,
    validate_graph,
)

router = APIRouter(prefix="/api/workflows", tags=["publish"])


@router.post("/analyze")
async def analyze(body: AnalyzeRequest, services: ServicesDep, _: AdminDep) -> dict[str, Any]:
    """Format, nodes, candidate inputs (typed from the engine's schemas), outputs, missing node types, models."""
    try:
        workflow = load_workflow(body.workflow)
    except WorkflowFormatError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail={"format": detect_format(body.workflow), "message": str(exc)}) from None
    catalog = await services.catalog()
    problems = validate_graph(workflow, catalog)
    missing = [{"class_type": class_type, "nodes": list(nodes)}
               for p in problems for class_type, nodes in (p.missing_types or ())]
    return {
        "format": "api",
        "nodes": [{"id": node_id, "class_type": workflow.class_type(node_id), "title": workflow.title(node_id),
                   "known": workflow.class_type(node_id) in catalog} for node_id in workflow.node_ids()],
        "inputs": [_candidate(c) for c in find_candidates(workflow, catalog)],
        "outputs": [asdict(o) for o in find_outputs(workflow, catalog)],
        "missing_node_types": missing,
        "problems": [asdict(p) for p in problems],
        "models": [asdict(m) for m in find_model_refs(workflow, catalog)],
    }


def _candidate(candidate: Any) -> dict[str, Any]:
    data = asdict(candidate)
    data["node"] = data.pop("node_id")
    data["input"] = data.pop("input_name")
    data["choices"] = list(candidate.choices)
    return data
