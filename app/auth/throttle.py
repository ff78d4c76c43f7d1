"""Failed logins per client address: a few are free, then each further one locks the address out for longer.

Only addresses with recent failures are tracked, and at most `max_clients` of them (the oldest are forgotten
first), so a flood of addresses cannot grow the memory without bound. The address is the one uvicorn reports: the
connection's peer, or the X-Forwarded-For of a reverse proxy on this machine (uvicorn trusts that header from
127.0.0.1 only), so a client elsewhere cannot choose the address it is counted under.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

FREE_FAILURES = 5  # failures allowed before the first lockout
FIRST_LOCKOUT_S = 2.0  # then 4, 8, 16... for each further failure
MAX_LOCKOUT_S = 900.0
FORGET_AFTER_S = 600.0  # an address with no failure for this long (and not locked out) starts afresh
MAX_CLIENTS = 10_000


@dataclass
class _Failures:
    count: int
    last_at: float
    locked_until: float = 0.0


class LoginThrottle:
    def __init__(self, *, free_failures: int = FREE_FAILURES, first_lockout_s: float = FIRST_LOCKOUT_S,
                 max_lockout_s: float = MAX_LOCKOUT_S, forget_after_s: float = FORGET_AFTER_S,
                 max_clients: int = MAX_CLIENTS, clock: Callable[[], float] = time.monotonic) -> None:
        self.free_failures = free_failures
        self.first_lockout_s = first_lockout_s
        self.max_lockout_s = max_lockout_s
        self.forget_after_s = forget_after_s
        self.max_clients = max_clients
        self.clock = clock
        self._clients: OrderedDict[str, _Failures] = OrderedDict()  # least recently failed first
        self._lock = threading.Lock()  # /login is answered in worker threads

    def retry_after(self, client: str) -> int | None:
        """Whole seconds this address must wait before its next attempt is checked; None: it may try now."""
        with self._lock:
            entry = self._clients.get(client)
            wait = entry.locked_until - self.clock() if entry is not None else 0.0
            return math.ceil(wait) if wait > 0 else None

    def failed(self, client: str) -> None:
        """A wrong password or key from this address."""
        now = self.clock()
        with self._lock:
            entry = self._clients.pop(client, None)
            if entry is None or self._forgotten(entry, now):
                entry = _Failures(0, now)
            entry.count += 1
            entry.last_at = now
            beyond = entry.count - self.free_failures
            if beyond >= 0:
                entry.locked_until = now + min(self.max_lockout_s, self.first_lockout_s * 2 ** min(beyond, 32))
            self._clients[client] = entry  # the most recent failure goes last
            self._trim(now)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)

    def tracked(self) -> int:
        with self._lock:
            return len(self._clients)

    def _forgotten(self, entry: _Failures, now: float) -> bool:
        return now >= entry.locked_until and now - entry.last_at > self.forget_after_s

    def _trim(self, now: float) -> None:
        # Entries are in the order of their last failure: the forgotten ones are at the front.
        while self._clients:
            oldest = next(iter(self._clients.values()))
            if len(self._clients) > self.max_clients or self._forgotten(oldest, now):
                self._clients.popitem(last=False)
            else:
                break
