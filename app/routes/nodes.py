"""Custom node packs of the managed engines: list with their state, install at a pin, remove. Admin only.
Installing or removing restarts the engines (custom nodes load only at start-up) before answering."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from app.deps import AdminDep, ServicesDep
from app.errors import Conflict, NotFound, Unprocessable, error_responses
from app.packs.service import ExternalEngine, NodePacks
from runtimes.engine.node_packs import PackError, PackNotFound

router = APIRouter(prefix="/api/nodes", tags=["node packs"],
                   responses=error_responses(400, 401, 403, 404, 409, 413, 422))


class PackInstall(BaseModel):
    pin: str = Field(min_length=3, max_length=1000,
                     description="GIT_URL@COMMIT (a full 40-hex commit) or REGISTRY_ID@VERSION (x.y.z)")


class PackOut(BaseModel):
    name: str = Field(description="its folder under custom_nodes/")
    pin: str | None = Field(description="what it was installed at; null: a folder not installed by this app")
    installed_at: str | None
    state: str = Field(description="loaded, failed (see log), or not loaded (the engines have not restarted since)")
    node_types: list[str] = Field(description="the node types it gives the engine")
    log: list[str] = Field(description="the engine's log lines about it when it failed to import")


class PacksOut(BaseModel):
    managed: bool = Field(description="false with --comfyui-url: packs are installed in that ComfyUI, not here")
    packs: list[PackOut]
    notes: list[str] = Field(default_factory=list, description="what the last install left undone, and why")
    restarted: int = Field(0, description="engines restarted to load the change")


@router.get("")
async def list_packs(services: ServicesDep, _: AdminDep) -> PacksOut:
    return PacksOut(managed=services.packs.managed, packs=await asyncio.to_thread(_described, services.packs))


@router.post("", status_code=status.HTTP_201_CREATED)
async def install_pack(body: PackInstall, services: ServicesDep, _: AdminDep) -> PacksOut:
    try:
        installed, restarted, described = await asyncio.to_thread(services.packs.install_and_load, body.pin,
                                                                   services.engines.progress.append)
    except ExternalEngine as exc:
        raise Conflict(str(exc)) from None
    except PackError as exc:
        raise Unprocessable(f"The node pack {body.pin[:200]!r} was not installed", [str(exc)]) from None
    return PacksOut(managed=True, packs=described, notes=list(installed.notes), restarted=restarted)


@router.delete("/{name}")
async def remove_pack(name: str, services: ServicesDep, _: AdminDep) -> PacksOut:
    packs = services.packs
    try:
        await asyncio.to_thread(packs.remove, name)
    except PackNotFound:
        raise NotFound(f"No node pack '{name[:100]}' in the engine's custom_nodes/ (GET /api/nodes lists them).") \
            from None
    except ExternalEngine as exc:
        raise Conflict(str(exc)) from None
    except PackError as exc:
        raise Unprocessable(str(exc)) from None
    restarted = await asyncio.to_thread(packs.restart_engines)
    return PacksOut(managed=True, packs=await asyncio.to_thread(_described, packs), restarted=restarted)


def _described(packs: NodePacks) -> list[dict[str, Any]]:
    return packs.describe(packs.object_info())
