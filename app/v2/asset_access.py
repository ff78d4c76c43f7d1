"""Who may use the Comfy API v2's assets at a base URL. The server-wide `/api/v2/assets` takes any API key; an app's
base URL (`/apps/{slug}/api/v2`, mounted with a dependency of its own that resolves to an AssetAccess) may also let
anonymous callers in where the app is public. An asset is seen only by its owner, and by admin keys."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.orm import Session

from app.auth.keys import identify
from app.errors import Unauthorized


@dataclass(frozen=True)
class AssetAccess:
    key_id: int | None  # the owner of what this caller uploads; None: anonymous (a public app's base URL)
    admin: bool = False

    def may_see(self, owner: int | None) -> bool:
        return self.admin or owner == self.key_id


# Who calls, as a check run in the route's own trip to the database (serving bytes then costs one trip, not two).
AccessCheck = Callable[[Session], AssetAccess]


def key_access(request: Request) -> AccessCheck:
    """The server-wide base URL: any API key; anonymous callers are refused."""
    authorization = request.headers.get("authorization")

    def check(session: Session) -> AssetAccess:
        caller = identify(session, authorization)
        if caller.key_id is None:
            raise Unauthorized("The Comfy API v2 on this server needs an API key: send 'Authorization: Bearer <key>' "
                               "(create one with `python launch.py keys create NAME`).")
        return AssetAccess(caller.key_id, caller.admin)

    return check
