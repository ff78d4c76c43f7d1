"""The GPU price table in force (runtimes/planner/prices.py), for admin keys: read it, replace it (saved in the data
dir with its date and source), or go back to the built-in one. The Deploy tab edits the same file."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.deps import AdminDep, ServicesDep
from app.errors import Conflict, Unprocessable, error_responses
from runtimes.planner import prices
from runtimes.planner.prices import PriceTable, PriceTableError

router = APIRouter(tags=["deployments"], responses=error_responses(400, 401, 403, 409, 413, 422))


class PricesIn(BaseModel):
    usd_per_hour: dict[str, Any] = Field(description="GPU type: USD per hour, each above 0, for GPU types Modal "
                                                     "offers; the ones left out keep the built-in price",
                                         examples=[{"A10": 1.0, "H100": 3.5}])
    source: str = Field("set through the API", min_length=1, max_length=200, description="where the prices come from")
    checked: str | None = Field(None, min_length=1, max_length=40,
                                description="when they were checked (default: today, as YYYY-MM-DD)")


class PricesOut(BaseModel):
    usd_per_hour: dict[str, float] = Field(description="every GPU type, in USD per hour")
    checked: str
    source: str
    builtin: bool = Field(description="true: the built-in table (no file in the data dir)")
    file: str | None = Field(description="the data dir's file the prices come from")

    @classmethod
    def of(cls, table: PriceTable) -> PricesOut:
        return cls(usd_per_hour=dict(table.usd_per_hour), checked=table.checked, source=table.source,
                   builtin=table.builtin, file=str(table.path) if table.path else None)


@router.get("/api/deploy/prices")
async def get_prices(services: ServicesDep, _: AdminDep) -> PricesOut:
    """The GPU prices the Deploy tab's costs and the planner use, with their date and source."""
    try:
        return PricesOut.of(await asyncio.to_thread(prices.in_force, services.settings.data_dir))
    except PriceTableError as exc:
        raise Conflict(f"{exc} (or PUT a new table, or DELETE this to go back to the built-in prices)") from None


@router.put("/api/deploy/prices")
async def put_prices(body: PricesIn, services: ServicesDep, _: AdminDep) -> PricesOut:
    """Replace the price table: saved in the data dir, over the built-in prices."""
    try:
        table = await asyncio.to_thread(prices.save, services.settings.data_dir, body.usd_per_hour, body.source,
                                        body.checked)
    except PriceTableError as exc:
        raise Unprocessable(str(exc)) from None
    return PricesOut.of(table)


@router.delete("/api/deploy/prices")
async def reset_prices(services: ServicesDep, _: AdminDep) -> PricesOut:
    """Back to the built-in prices (the data dir's file is removed)."""
    return PricesOut.of(await asyncio.to_thread(prices.reset, services.settings.data_dir))
