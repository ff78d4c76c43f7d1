"""API keys: the token is shown once at creation; the database keeps only its sha256.

A random 256-bit token needs no slow password hash: guessing is hopeless, and an exact lookup of the hash
does not leak timing about the token's characters.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from db.models import ApiKey, utcnow

TOKEN_PREFIX = "cpk_"
PREFIX_LENGTH = len(TOKEN_PREFIX) + 8  # "cpk_" and 8 random characters: enough to tell keys apart in a list
# last_used_at is written at most this often per key, so each authenticated request is not also a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# A key verified this recently is taken from memory (a client polling a job every few ms is not a read each time).
# A key revoked in this process is forgotten at once; one revoked from another process (the CLI) within this long.
RECENT_S = 2.0
_RECENT_MAX = 1024  # keys remembered at once (only live keys are: a stranger's guesses are never kept)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_key(session: Session, *, name: str, admin: bool, workflows: bool = False) -> tuple[ApiKey, str]:
    """The stored key and its plaintext token (the only time the token exists)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(name=name, prefix=token[:PREFIX_LENGTH], key_hash=hash_token(token), admin=admin,
                 workflows=workflows, created_at=utcnow())
    session.add(key)
    session.commit()
    return key, token


@dataclass(frozen=True)
class VerifiedKey:
    id: int
    admin: bool
    workflows: bool = False  # may run any API-format workflow (the Comfy API v2's POST /api/v2/jobs)


_KEYS = ApiKey.__table__
# Every authenticated request runs these: built once (Core, bound parameters), not per call.
_LIVE_KEY = select(_KEYS.c.id, _KEYS.c.admin, _KEYS.c.workflows, _KEYS.c.last_used_at).where(
    _KEYS.c.key_hash == bindparam("key_hash"), _KEYS.c.revoked_at.is_(None))
_RECORD_USE = update(_KEYS).where(_KEYS.c.id == bindparam("key_id")).values(last_used_at=bindparam("used_at"))


class RecentKeys:
    """Keys verified in the last RECENT_S seconds, by token hash. Plain dict operations: safe from worker threads
    under the GIL."""

    def __init__(self) -> None:
        self._keys: dict[str, tuple[VerifiedKey, float]] = {}

    def get(self, key_hash: str) -> VerifiedKey | None:
        found = self._keys.get(key_hash)
        if found is None or time.monotonic() - found[1] >= RECENT_S:
            return None
        return found[0]

    def put(self, key_hash: str, key: VerifiedKey) -> None:
        if len(self._keys) >= _RECENT_MAX:
            self._keys.clear()
        self._keys[key_hash] = (key, time.monotonic())

    def forget(self) -> None:
        self._keys.clear()


RECENT_KEYS = RecentKeys()


def recently_verified(token: str) -> VerifiedKey | None:
    """The key for `token` if it was verified within RECENT_S seconds (no database read); None: ask verify_api_key."""
    return RECENT_KEYS.get(hash_token(token)) if token.startswith(TOKEN_PREFIX) else None


def verify_api_key(session: Session, *, token: str) -> VerifiedKey | None:
    """The key for `token`, or None if unknown or revoked. Records the use (to the minute; that write commits)."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    key_hash = hash_token(token)
    if (recent := RECENT_KEYS.get(key_hash)) is not None:
        return recent
    key = session.execute(_LIVE_KEY, {"key_hash": key_hash}).one_or_none()
    if key is None:
        return None
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        session.execute(_RECORD_USE, {"key_id": key.id, "used_at": now})
        session.commit()
    verified = VerifiedKey(id=key.id, admin=key.admin, workflows=key.workflows)
    RECENT_KEYS.put(key_hash, verified)
    return verified


def list_api_keys(session: Session) -> list[ApiKey]:
    """All keys, revoked ones included (they show when they were revoked), oldest first."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_api_key(session: Session, *, key_id: int | None = None, prefix: str | None = None) -> ApiKey | None:
    """Revoke by id or by the prefix shown in lists (exactly one of them). None if no key matches.

    Revoking a revoked key keeps its first revoked_at. A prefix shared by several live keys is refused
    (ValueError) rather than revoking more than was meant.
    """
    if (key_id is None) == (prefix is None):
        raise ValueError("give exactly one of key_id or prefix")
    if key_id is not None:
        key = session.get(ApiKey, key_id)
    else:
        matches = list(session.scalars(select(ApiKey).where(ApiKey.prefix == prefix).order_by(ApiKey.id)))
        live = [k for k in matches if k.revoked_at is None]
        if len(live) > 1:
            raise ValueError(f"prefix {prefix!r} matches {len(live)} keys: revoke by id")
        key = live[0] if live else (matches[0] if matches else None)
    if key is None:
        return None
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.commit()
        RECENT_KEYS.forget()  # refused from the next request on, not RECENT_S later
    return key
