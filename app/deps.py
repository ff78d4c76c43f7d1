"""FastAPI dependencies as named aliases, so handlers read like plain functions."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from app.auth.keys import Caller, identify, require_admin
from app.services import Services

# Ids and version numbers are SQLite INTEGERs (signed 64-bit): a larger number could never name a row, and the
# database driver would raise on it; 422 at the door instead.
MAX_DB_INT = 2**63 - 1
DbInt = Annotated[int, Path(ge=1, le=MAX_DB_INT)]


# async, though they do no I/O: FastAPI runs a plain `def` dependency in a worker thread, and a thread
# hop per dependency per request was a large share of the gateway's own latency.
async def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_caller(request: Request, services: ServicesDep) -> Caller:
    # A key's last use is committed where it is recorded.
    return await services.db(identify, request.headers.get("authorization"))


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_admin(caller: CallerDep) -> Caller:
    require_admin(caller)
    return caller


AdminDep = Annotated[Caller, Depends(get_admin)]
