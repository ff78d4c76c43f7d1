"""Idempotency-Keys of asset uploads, single-use as the contract says (`422 idempotency_key_reuse`; keys expire
after 24 h). Kept in memory: an upload deduplicates by content anyway, so a key forgotten at a restart costs at
most a second record over the same blob."""

from __future__ import annotations

import time
from collections import OrderedDict

KEY_TTL_S = 24 * 3600
MAX_KEYS = 100_000  # the oldest are forgotten first past this


class UsedKeys:
    def __init__(self, ttl_s: float = KEY_TTL_S, max_keys: int = MAX_KEYS) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self.ttl_s, self.max_keys = ttl_s, max_keys

    def claim(self, scope: str) -> bool:
        """True the first time this scoped key is presented (within its TTL); False on any later presentation."""
        now = time.monotonic()
        while self._seen and (next(iter(self._seen.values())) < now - self.ttl_s or len(self._seen) >= self.max_keys):
            self._seen.popitem(last=False)
        if scope in self._seen:
            return False
        self._seen[scope] = now
        return True

    def release(self, scope: str) -> None:
        """The request under this key failed: the key may be used again."""
        self._seen.pop(scope, None)
