"""Signed webhook delivery: a run may carry a ``webhook`` URL that is POSTed to when the run finishes.

Each delivery is a ``POST`` of a JSON body with these headers:

``Comfy-Publisher-Event``
    ``run.succeeded``, ``run.failed``, ``run.cancelled`` or ``run.timed_out``.
``Comfy-Publisher-Delivery``
    A unique id for this delivery. Retries of one delivery repeat the same id, so receivers can deduplicate.
``Comfy-Publisher-Attempt``
    1 for the first try, 2 for the first retry, ... (informational, not signed).
``Comfy-Publisher-Signature``
    ``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}." + raw body)>``. The timestamp is signed too, so a
    captured request cannot be replayed later than the receiver's tolerance. A header may carry several ``v1=``
    values (e.g. while a secret is rotated); a receiver accepts the request if any of them matches.

The secret is per app (``app.auth.secrets.webhook_secret``); the app's owner can see it, nobody else. Verifying on the
receiving side (Python; any language with HMAC-SHA256 works the same way)::

    import hashlib, hmac, time

    def verify(raw_body: bytes, header: str, secret: str, tolerance_s: int = 300) -> bool:
        fields = [part.split("=", 1) for part in header.split(",") if "=" in part]
        timestamps = [v for k, v in fields if k.strip() == "t"]
        if len(timestamps) != 1 or not timestamps[0].strip().isdigit():
            return False
        t = int(timestamps[0])
        if abs(time.time() - t) > tolerance_s:  # too old (replay) or too far in the future
            return False
        expected = hmac.new(secret.encode(), f"{t}.".encode() + raw_body, hashlib.sha256).hexdigest()
        return any(hmac.compare_digest(expected, v.strip()) for k, v in fields if k.strip() == "v1")

Verify the raw bytes as received, before parsing the JSON: re-serialising changes the bytes. This module's own
``verify`` does exactly this.

Delivery (``WebhookSender``): up to ``attempts`` tries; retried on connection errors, timeouts, 5xx and 429
(honouring ``Retry-After`` up to ``max_delay_s``) with exponential backoff and jitter; any other 4xx, and any
3xx (redirects are never followed, to keep the SSRF check meaningful), ends the delivery at once. The secret and
signatures are never logged, nor are URL query strings or credentials (they often carry tokens).

SSRF: ``check_webhook_url`` (at the API boundary, when a run is submitted) refuses non-http(s) URLs and, unless
private targets are allowed (tests, or ``--allow-private-webhooks`` for local set-ups), loopback, private,
link-local and other non-public IP literals and ``localhost``. The sender checks again before each attempt, and
then also refuses host names that resolve to such addresses.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
import inspect
import ipaddress
import json
import logging
import math
import random
import re
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = [
    "ATTEMPT_HEADER",
    "DELIVERY_HEADER",
    "EVENTS",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "DeliveryResult",
    "WebhookSender",
    "check_webhook_url",
    "sign",
    "verify",
]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Comfy-Publisher-Signature"
EVENT_HEADER = "Comfy-Publisher-Event"
DELIVERY_HEADER = "Comfy-Publisher-Delivery"
ATTEMPT_HEADER = "Comfy-Publisher-Attempt"
EVENTS = frozenset({"run.succeeded", "run.failed", "run.cancelled", "run.timed_out"})

USER_AGENT = "comfy-publisher-webhooks/1"
MAX_URL_LENGTH = 2048
ALLOW_PRIVATE_HINT = (
    "to deliver webhooks to local or private addresses (local set-ups only), start the server with "
    "--allow-private-webhooks"
)

_HOSTNAME = re.compile(r"^[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?$")
_NUMERIC_HOST = re.compile(r"^[0-9a-fx.]+$")


# --- signing -----------------------------------------------------------------------------------------------------


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The ``Comfy-Publisher-Signature`` header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={int(timestamp)},v1={_digest(body, secret, int(timestamp))}"


def verify(body: bytes, header: str, secret: str, *, tolerance_s: int = 300, now: float | None = None) -> bool:
    """True if ``header`` signs ``body`` with ``secret`` and its timestamp is within ``tolerance_s`` of ``now``.

    Never raises on a malformed header (it is attacker-controlled input): it just returns False.
    """
    timestamps: list[str] = []
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            candidates.append(value)
    # Exactly one plain decimal timestamp: int() alone would also accept "+1_0" and the like.
    if len(timestamps) != 1 or not timestamps[0].isascii() or not timestamps[0].isdigit() or not candidates:
        return False
    timestamp = int(timestamps[0])
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:  # replayed (too old) or forged far into the future
        return False
    expected = _digest(body, secret, timestamp)
    # Check every candidate (no early exit) so timing does not reveal which one matched.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected.encode(), candidate.encode("utf-8", "replace"))
    return matched


def _digest(body: bytes, secret: str, timestamp: int) -> str:
    return hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


# --- URL checks (SSRF) -------------------------------------------------------------------------------------------


def check_webhook_url(url: str, *, allow_private: bool) -> str:
    """Validate a webhook URL at submit time; return it normalised, or raise ValueError saying what is wrong.

    Only http/https with a host. Unless ``allow_private``, refuses ``localhost`` (and ``*.localhost``) and IP
    literals that are not public (loopback, private, link-local, CGNAT, unspecified, multicast, reserved), in any
    notation the resolver accepts (``127.1``, ``2130706433``, ``[::ffff:127.0.0.1]``...).
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError("webhook URL is empty; expected an absolute http:// or https:// URL")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"webhook URL is too long ({len(url)} characters, at most {MAX_URL_LENGTH})")
    try:
        # Parse with httpx, the client that will send the request, so the check and the request agree on the host.
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise ValueError(f"webhook URL {_redact_text(url)!r} is not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        shown = parsed.scheme or "none"
        raise ValueError(f"webhook URL must use http:// or https:// (got scheme {shown!r})")
    host = parsed.host
    if not host:
        raise ValueError("webhook URL has no host; expected e.g. https://example.com/hooks/comfy")
    address = _ip_literal(host)
    if address is None:
        name = host.rstrip(".")
        if not _HOSTNAME.match(name):
            raise ValueError(f"webhook URL host {host!r} is not a valid host name")
        if not allow_private and (name == "localhost" or name.endswith(".localhost")):
            raise ValueError(f"webhook URL host {host!r} is this machine (loopback); {ALLOW_PRIVATE_HINT}")
    elif not allow_private and not _is_public(address):
        raise ValueError(
            f"webhook URL host {host!r} is a {_describe(address)} address, refused to protect internal services "
            f"(SSRF); {ALLOW_PRIVATE_HINT}"
        )
    return str(parsed)


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    # getaddrinfo also takes inet_aton forms ("127.1", "0x7f.0.0.1", "2130706433"); treat those as literals too.
    if _NUMERIC_HOST.match(host.rstrip(".")):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            return None
    return None


def _unmapped(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    # ::ffff:10.0.0.1 reaches 10.0.0.1; judge it as the IPv4 address it really is.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    address = _unmapped(address)
    return address.is_global and not address.is_multicast


def _describe(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    address = _unmapped(address)
    for label, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("unspecified", address.is_unspecified),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
    ):
        if flag:
            return label
    return "non-public"


async def _resolve(host: str, port: int) -> list[str]:
    """Addresses ``host`` resolves to (a module-level function so tests can substitute a resolver)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _redact_text(url: str) -> str:
    # For messages about unparseable URLs: keep up to the host, drop anything that may hold credentials or tokens.
    head = url.split("?", 1)[0].split("#", 1)[0]
    scheme, sep, rest = head.partition("://")
    rest = rest.rsplit("@", 1)[-1].split("/", 1)[0]
    return f"{scheme}{sep}{rest}"[:200]


def _redact(url: httpx.URL) -> str:
    # Logs and errors show scheme://host:port/path only: userinfo and query strings often carry tokens.
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}{url.path}"


# --- delivery ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What happened to one delivery (all its attempts). Holds no secret, signature or URL query."""

    delivery_id: str
    event: str
    delivered: bool
    attempts: int
    status: int | None = None  # HTTP status of the last attempt that got a response
    error: str | None = None  # why the last attempt failed; None once delivered
    delays: tuple[float, ...] = field(default=())  # seconds slept before each retry


class _Retry(Exception):
    """Internal: the attempt failed in a way worth retrying."""

    def __init__(self, error: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.retry_after = retry_after


class _GiveUp(Exception):
    """Internal: the attempt failed in a way that retrying will not fix."""

    def __init__(self, error: str, status: int | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.status = status


OnResult = Callable[[DeliveryResult], Awaitable[None] | None]


class WebhookSender:
    """Delivers signed webhooks with retries; ``send_in_background`` for fire-and-forget use from a server.

    Use one sender per server and ``await sender.aclose()`` on shutdown (or ``async with WebhookSender() as s``).
    """

    def __init__(
        self,
        *,
        attempts: int = 5,
        base_delay_s: float = 1.0,
        max_delay_s: float = 60.0,
        timeout_s: float = 10.0,
        allow_private: bool = False,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        if base_delay_s < 0 or max_delay_s < 0 or timeout_s <= 0:
            raise ValueError("delays must be >= 0 and timeout_s > 0")
        self.attempts = attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.timeout_s = timeout_s
        self.allow_private = allow_private
        # Strong references: the event loop only keeps weak ones, so an unreferenced task can be collected mid-run.
        self._tasks: set[asyncio.Task[DeliveryResult]] = set()
        self._closed = False

    async def __aenter__(self) -> WebhookSender:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def pending(self) -> int:
        """Number of background deliveries not finished yet."""
        return len(self._tasks)

    async def deliver(self, url: str, payload: dict[str, Any], secret: str, event: str,
                      delivery_id: str | None = None) -> DeliveryResult:
        """POST ``payload`` as signed JSON to ``url``, retrying as configured; never raises for delivery failures.

        ``delivery_id``: the same id for a delivery sent again (e.g. after a restart), so receivers can deduplicate;
        a new one when omitted. Raises ValueError for an unknown ``event`` and TypeError for a payload that is not
        JSON-serialisable (both are caller bugs, not delivery problems).
        """
        if event not in EVENTS:
            raise ValueError(f"unknown webhook event {event!r}; expected one of {sorted(EVENTS)}")
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
        delivery_id = delivery_id or str(uuid.uuid4())
        try:
            target = httpx.URL(check_webhook_url(url, allow_private=self.allow_private))
        except ValueError as exc:
            log.warning("webhook %s (%s) not sent: %s", delivery_id, event, exc)
            return DeliveryResult(delivery_id, event, delivered=False, attempts=0, error=str(exc))

        where = _redact(target)
        delays: list[float] = []
        status: int | None = None
        error: str | None = None
        attempt = 0
        # One client per delivery: no cookie jar or connection shared between different receivers.
        async with httpx.AsyncClient(
            follow_redirects=False, trust_env=False, timeout=self.timeout_s, headers={"User-Agent": USER_AGENT}
        ) as client:
            while True:
                attempt += 1
                try:
                    status = await self._attempt(client, target, body, secret, event, delivery_id, attempt)
                except _GiveUp as exc:
                    status = exc.status if exc.status is not None else status
                    error = exc.error
                    log.warning("webhook %s (%s) to %s failed, not retried: %s", delivery_id, event, where, error)
                    break
                except _Retry as exc:
                    status = exc.status if exc.status is not None else status
                    error = exc.error
                    if attempt >= self.attempts:
                        log.warning(
                            "webhook %s (%s) to %s gave up after %d attempts: %s",
                            delivery_id, event, where, attempt, error,
                        )  # fmt: skip
                        break
                    delay = self._delay(attempt, exc.retry_after)
                    delays.append(delay)
                    log.info(
                        "webhook %s (%s) to %s attempt %d failed (%s); retrying in %.2fs",
                        delivery_id, event, where, attempt, error, delay,
                    )  # fmt: skip
                    await asyncio.sleep(delay)
                else:
                    log.info("webhook %s (%s) delivered to %s (HTTP %d, attempt %d)",
                             delivery_id, event, where, status, attempt)  # fmt: skip
                    return DeliveryResult(delivery_id, event, True, attempt, status, None, tuple(delays))
        return DeliveryResult(delivery_id, event, False, attempt, status, error, tuple(delays))

    async def _attempt(
        self,
        client: httpx.AsyncClient,
        target: httpx.URL,
        body: bytes,
        secret: str,
        event: str,
        delivery_id: str,
        attempt: int,
    ) -> int:
        """One POST; returns the 2xx status or raises _Retry / _GiveUp."""
        if not self.allow_private:
            await self._check_resolved(target)
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: event,
            DELIVERY_HEADER: delivery_id,
            ATTEMPT_HEADER: str(attempt),
            # Signed afresh on each attempt: a retry after a long backoff must still pass the receiver's tolerance.
            SIGNATURE_HEADER: sign(body, secret, int(time.time())),
        }
        try:
            # asyncio.timeout bounds the whole attempt; httpx's own timeout is per socket operation only.
            async with asyncio.timeout(self.timeout_s):
                # Streamed and closed without reading the body: a receiver's reply is never needed, maybe huge.
                async with client.stream("POST", target, content=body, headers=headers) as response:
                    code = response.status_code
                    retry_after = response.headers.get("Retry-After")
                    location = response.headers.get("Location")
                    reason = response.reason_phrase
        except TimeoutError:
            raise _Retry(f"timed out after {self.timeout_s:g}s") from None
        except httpx.UnsupportedProtocol as exc:
            raise _GiveUp(f"unsupported URL: {exc}") from None
        except httpx.TransportError as exc:
            # Connection refused/reset, DNS failure, protocol error, httpx timeouts: all possibly transient.
            raise _Retry(_describe_exception(exc)) from None

        text = f"HTTP {code}" + (f" {reason}" if reason else "")
        if 200 <= code < 300:
            return code
        if code == 429 or code >= 500:
            raise _Retry(text, code, _parse_retry_after(retry_after))
        if 300 <= code < 400:
            shown = f" to {_redact_text(location)}" if location else ""
            raise _GiveUp(f"{text}: redirect{shown} not followed; configure the final URL as the webhook", code)
        raise _GiveUp(text, code)

    async def _check_resolved(self, target: httpx.URL) -> None:
        # Best effort against names that point inside (e.g. *.nip.io -> 127.0.0.1). A rebinding DNS server could
        # still answer differently when httpx resolves again; closing that needs a pinned-address transport.
        host = target.host
        if _ip_literal(host) is not None:
            return  # already checked by check_webhook_url
        try:
            addresses = await _resolve(host, target.port or (443 if target.scheme == "https" else 80))
        except OSError as exc:
            raise _Retry(f"cannot resolve {host!r}: {exc}") from None
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
            if not _is_public(address):
                raise _GiveUp(
                    f"host {host!r} resolves to a {_describe(address)} address ({address}), refused to protect "
                    f"internal services (SSRF); {ALLOW_PRIVATE_HINT}"
                )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay_s)
        # Exponential backoff with "equal jitter": in [d/2, d), so receivers that failed together do not retry
        # together, yet each wait is longer than the previous one until max_delay_s is reached.
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return ceiling * (0.5 + random.random() / 2)

    # --- background use ------------------------------------------------------------------------------------------

    def send_in_background(
        self,
        url: str,
        payload: dict[str, Any],
        secret: str,
        event: str,
        *,
        delivery_id: str | None = None,
        on_result: OnResult | None = None,
    ) -> asyncio.Task[DeliveryResult]:
        """Start ``deliver`` as a task and return it; the sender keeps a reference until it finishes.

        ``on_result`` (sync or async) runs inside the task with the result, e.g. to record it; ``aclose`` waits
        for it as part of the delivery. Its exceptions are logged, not raised.
        """
        if self._closed:
            raise RuntimeError("WebhookSender is closed; no new deliveries are accepted")
        if event not in EVENTS:  # fail in the caller, not silently inside a task
            raise ValueError(f"unknown webhook event {event!r}; expected one of {sorted(EVENTS)}")
        task = asyncio.get_running_loop().create_task(
            self._deliver_and_report(url, payload, secret, event, delivery_id, on_result), name=f"webhook-{event}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _deliver_and_report(
        self, url: str, payload: dict[str, Any], secret: str, event: str, delivery_id: str | None,
        on_result: OnResult | None,
    ) -> DeliveryResult:
        try:
            result = await self.deliver(url, payload, secret, event, delivery_id)
        except asyncio.CancelledError:
            log.warning("webhook (%s) cancelled before it finished (server shutting down)", event)
            raise
        except Exception:
            log.exception("webhook (%s) could not be sent", event)
            raise
        if on_result is not None:
            try:
                outcome = on_result(result)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                log.exception("webhook %s: on_result callback failed", result.delivery_id)
        return result

    async def aclose(self, grace_s: float = 10.0) -> None:
        """Stop accepting deliveries; wait up to ``grace_s`` for pending ones, then cancel those left."""
        self._closed = True
        pending = set(self._tasks)
        if not pending:
            return
        _, still_running = await asyncio.wait(pending, timeout=grace_s)
        if still_running:
            log.warning("cancelling %d webhook deliveries still running after %.1fs", len(still_running), grace_s)
            for task in still_running:
                task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def _parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if absent or unparseable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)  # RFC says integer; accepting "1.5" costs nothing
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(when.timestamp() - current, 0.0)


def _describe_exception(exc: BaseException) -> str:
    message = str(exc).strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
