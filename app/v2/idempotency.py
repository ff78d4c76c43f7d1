"""The v2 Idempotency-Key: single use, reject-on-duplicate (never a replay). A key is claimed in memory when its
request reaches submission (so two concurrent requests cannot both pass) and released when that submission fails
without creating a job; a job keeps it in its record (runs.idempotency_scope), so a restart forgets no key. Keys
expire after 24 h."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

KEY_LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 200


class IdempotencyClaims:
    def __init__(self) -> None:
        self._claimed: dict[str, float] = {}  # scope -> when claimed (monotonic)
        self._lock = threading.Lock()  # claimed from the submissions' worker threads

    def claim(self, scope: str) -> bool:
        """False when the key was claimed within its lifetime (by this process)."""
        now = time.monotonic()
        with self._lock:
            self._prune(now)
            if scope in self._claimed:
                return False
            self._claimed[scope] = now
            return True

    def release(self, scope: str) -> None:
        with self._lock:
            self._claimed.pop(scope, None)

    def _prune(self, now: float) -> None:
        if len(self._claimed) > 10_000 or (self._claimed and now - next(iter(self._claimed.values())) >
                                           KEY_LIFETIME.total_seconds()):
            horizon = now - KEY_LIFETIME.total_seconds()
            self._claimed = {scope: at for scope, at in self._claimed.items() if at > horizon}
