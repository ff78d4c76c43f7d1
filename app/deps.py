"""FastAPI dependencies as named aliases, so handlers read like plain functions."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.auth.keys import Caller, identify, require_admin
from app.services import Services


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
