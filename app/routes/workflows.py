"""POST /api/workflows/analyze: what a workflow is made of and which inputs could be published."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.deps import AdminDep, ServicesDep
from app.errors import Unprocessable, error_responses
from app.publish import service as publishing
from app.routes.schemas import AnalyzeRequest
from publisher import WorkflowFormatError, detect_format
from publisher.node_packs import MissingNodeTypesError

router = APIRouter(prefix="/api/workflows", tags=["publish"], responses=error_responses(400, 401, 403, 413, 422, 503))


@router.post("/analyze")
async def analyze(body: AnalyzeRequest, services: ServicesDep, _: AdminDep) -> dict[str, Any]:
    """Format, nodes, candidate inputs (typed from the engine's schemas), outputs, missing node types, models."""
    catalog = await services.catalog.get()
    try:
        result = publishing.analyze(body.workflow, catalog)
    except MissingNodeTypesError as exc:  # which packs to install, for a client that offers to
        raise Unprocessable(str(exc), format=detect_format(body.workflow),
                            missing_node_types=publishing.missing_node_types(exc)) from None
    except WorkflowFormatError as exc:
        raise Unprocessable(str(exc), format=detect_format(body.workflow)) from None
    if result["format"] != "ui":
        del result["workflow"]  # the caller sent it; a UI-format file gets back its API-format conversion
        result["format"] = "api"
    return result
