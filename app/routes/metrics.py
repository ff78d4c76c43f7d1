"""GET /metrics: the live metrics (app.metrics) in the Prometheus text format, for admin keys, or for anyone with
--metrics-open (a scraper on a trusted network). Left out of the OpenAPI schema: it is for scrapers, in
Prometheus' format, not part of the API that apps' callers use."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.auth.keys import require_admin
from app.deps import ServicesDep, get_caller
from app.metrics import CONTENT_TYPE, Metrics

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, services: ServicesDep) -> Response:
    if not services.settings.metrics_open:
        require_admin(await get_caller(request, services))
    live: Metrics = request.app.state.metrics
    return Response(live.render(), media_type=CONTENT_TYPE)
