"""Whether a provider's API can be reached at all, asked in seconds before a deploy records anything: a TCP
connection to its host (no request, no credentials sent)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlparse


async def unreachable(url: str, timeout: float) -> str | None:
    """None when a connection to `url`'s host opens within `timeout` seconds; else why not, for people."""
    parsed = urlparse(url)
    host, port = parsed.hostname or url, parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        writer.close()
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None
