"""Who may use the Comfy API v2's assets at a base URL. The server-wide `/api/v2/assets` takes any API key; an app's
base URL (`/apps/{slug}/api/v2`, mounted with a dependency of its own that resolves to an AssetAccess) may also let
anonymous callers in where the app is public. An asset is seen only by its owner, and by admin keys."""

from __future__ import annotations

from dataclasses import dataclass

from app.deps import CallerDep
from app.errors import Unauthorized


@dataclass(frozen=True)
class AssetAccess:
    key_id: int | None  # the owner of what this caller uploads; None: anonymous (a public app's base URL)
    admin: bool = False

    def may_see(self, owner: int | None) -> bool:
        return self.admin or owner == self.key_id


async def key_access(caller: CallerDep) -> AssetAccess:
    """The server-wide base URL: any API key; anonymous callers are refused."""
    if caller.key_id is None:
        raise Unauthorized("The Comfy API v2 on this server needs an API key: send 'Authorization: Bearer <key>' "
                           "(create one with `python launch.py keys create NAME`).")
    return AssetAccess(caller.key_id, caller.admin)
