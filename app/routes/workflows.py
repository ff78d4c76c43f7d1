"""POST /api/workflows/analyze: what a workflow is made of and which inputs could be published."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status

from app import publishing
from app.deps import AdminDep, ServicesDep
from app.schemas import AnalyzeRequest
from publisher import WorkflowFormatError, detect_format

router = APIRouter(prefix="/api/workflows", tags=["publish"])


@router.post("/analyze")
async def analyze(body: AnalyzeRequest, services: ServicesDep, _: AdminDep) -> dict[str, Any]:
    """Format, nodes, candidate inputs (typed from the engine's schemas), outputs, missing node types, models."""
    catalog = await services.catalog()
    try:
        result = publishing.analyze(body.workflow, catalog)
    except WorkflowFormatError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail={"format": detect_format(body.workflow), "message": str(exc)}) from None
    if result["format"] != "ui":
        del result["workflow"]  # the caller sent it; a UI-format file gets back its API-format conversion
        result["format"] = "api"
    return result
