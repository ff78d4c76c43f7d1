"""Who is calling: API keys from `Authorization: Bearer`, and what they may do."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.errors import Forbidden, Unauthorized
from db import crud_keys


@dataclass(frozen=True)
class Caller:
    key_id: int | None  # None: no key (only public apps can be run)
    admin: bool
    # Let in by the web login (the studio, or a form behind it), which checked access already: may run private
    # apps without a key. Its runs are recorded with the key its visitor logged in with, if any.
    web: bool = False
    # May run any API-format workflow on the engines (the Comfy API v2's POST /api/v2/jobs); admins always may.
    workflows: bool = False

    @property
    def scope(self) -> str:
        return str(self.key_id) if self.key_id is not None else "public"


ANONYMOUS = Caller(key_id=None, admin=False)


def identify(session: Session, authorization: str | None) -> Caller:
    """The caller behind an `Authorization` header's bearer token; anonymous without one, Unauthorized for a bad
    one."""
    token = _bearer(authorization)
    if token is None:
        return ANONYMOUS
    key = crud_keys.verify_api_key(session, token=token)
    if key is None:
        raise Unauthorized("This API key is unknown or revoked. Create one with `python launch.py keys create NAME`.")
    return Caller(key_id=key.id, admin=key.admin, workflows=key.workflows)


def identify_recent(authorization: str | None) -> Caller | None:
    """`identify` without the database, for a key verified in the last seconds (crud_keys.RECENT_S) or no key at all;
    None: ask `identify`."""
    token = _bearer(authorization)
    if token is None:
        return ANONYMOUS
    key = crud_keys.recently_verified(token)
    return None if key is None else Caller(key_id=key.id, admin=key.admin, workflows=key.workflows)


def _bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer` header; None without the header, Unauthorized for another form."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization must be 'Bearer <API key>'.")
    return token.strip()


def require_admin(caller: Caller) -> None:
    if caller.key_id is None:
        raise Unauthorized("Publishing and managing need an admin API key: send 'Authorization: Bearer <key>' "
                           "(create one with `python launch.py keys create NAME --admin`).")
    if not caller.admin:
        raise Forbidden("This API key may run apps but not publish or manage them: use an admin key.")


def require_runner(caller: Caller, *, public: bool) -> None:
    if not public and caller.key_id is None and not caller.web:
        raise Unauthorized("This app is private: send 'Authorization: Bearer <API key>'.")
