"""The v2 Idempotency-Key: single use, reject-on-duplicate (never a replay), for jobs and asset uploads alike. A key
is claimed in memory when its request reaches submission (so two concurrent requests cannot both pass) and released
when that request fails without creating anything. A job also keeps its key in its record (runs.idempotency_scope),
so a restart forgets no job's key; an upload's key is forgotten at a restart, which costs at most a second record
over the same blob (uploads deduplicate by content). Keys expire after 24 h."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from datetime import timedelta

KEY_LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 200
MAX_KEYS = 100_000  # remembered at most; the oldest are forgotten first


class SingleUseKeys:
    def __init__(self, lifetime_s: float = KEY_LIFETIME.total_seconds(), max_keys: int = MAX_KEYS) -> None:
        self._claimed: OrderedDict[str, float] = OrderedDict()  # scope -> when claimed (monotonic), oldest first
        self.lifetime_s, self.max_keys = lifetime_s, max_keys
        self._lock = threading.Lock()  # claimed from the submissions' worker threads too

    def claim(self, scope: str) -> bool:
        """True the first time this scoped key is presented within its lifetime; False on any later presentation."""
        now = time.monotonic()
        with self._lock:
            while self._claimed and next(iter(self._claimed.values())) < now - self.lifetime_s:
                self._claimed.popitem(last=False)
            if scope in self._claimed:
                return False
            while len(self._claimed) >= self.max_keys:
                self._claimed.popitem(last=False)
            self._claimed[scope] = now
            return True

    def release(self, scope: str) -> None:
        """The request under this key created nothing: the key may be used again."""
        with self._lock:
            self._claimed.pop(scope, None)
