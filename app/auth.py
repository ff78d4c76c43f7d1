"""Who is calling: API keys from `Authorization: Bearer`, and what they may do."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException, Request, status
from sqlalchemy.orm import Session

from db import crud_keys


@dataclass(frozen=True)
class Caller:
    key_id: int | None  # None: no key (only public apps can be run)
    admin: bool

    @property
    def scope(self) -> str:
        return str(self.key_id) if self.key_id is not None else "public"


ANONYMOUS = Caller(key_id=None, admin=False)


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=message, headers={"WWW-Authenticate": "Bearer"})


def identify(request: Request, session: Session) -> Caller:
    """The caller behind the request's bearer token; anonymous without one, 401 for a bad one."""
    header = request.headers.get("authorization")
    if not header:
        return ANONYMOUS
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Authorization must be 'Bearer <API key>'.")
    key = crud_keys.verify_api_key(session, token=token.strip())
    if key is None:
        raise _unauthorized("This API key is unknown or revoked. Create one with "
                            "`python launch.py keys create NAME`.")
    return Caller(key_id=key.id, admin=key.admin)


def require_admin(caller: Caller) -> None:
    if caller.key_id is None:
        raise _unauthorized("Publishing and managing need an admin API key: send 'Authorization: Bearer <key>' "
                            "(create one with `python launch.py keys create NAME --admin`).")
    if not caller.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="This API key may run apps but not publish or "
                                                              "manage them: use an admin key.")


def require_runner(caller: Caller, *, public: bool) -> None:
    if not public and caller.key_id is None:
        raise _unauthorized("This app is private: send 'Authorization: Bearer <API key>'.")
