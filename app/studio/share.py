"""--share: a public Gradio share link to this server, or a plain message saying why there is none."""

from __future__ import annotations

import secrets
import socket
import sys
import threading
from collections.abc import Callable

SHARE_API_HOST = "api.gradio.app"
PROBE_TIMEOUT_S = 3.0


def internet_reachable(host: str = SHARE_API_HOST, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when `host`:443 answers; else the reason, found within `timeout` (not Gradio's 30 s)."""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return None
    except OSError as exc:
        return f"{host} cannot be reached ({exc.strerror or type(exc).__name__})"


def open_tunnel(port: int, *, say: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
                probe: Callable[[], str | None] = internet_reachable) -> str | None:
    """The share URL, or None after saying why (the local and LAN URLs keep working either way)."""
    reason = probe()
    if reason is None:
        try:
            from gradio import networking

            url = networking.setup_tunnel("127.0.0.1", port, secrets.token_urlsafe(32), None, None)
        except Exception as exc:  # gradio raises plain exceptions for a missing binary, a refused tunnel, ...
            reason = f"{type(exc).__name__}: {exc}"
        else:
            say(f"Share link (public, 72 h): {url}/studio/  — forms at {url}/apps/<name>/")
            return url
    say(f"--share: no public link: {reason}. This machine seems to be offline or behind a firewall; "
        "the local and LAN URLs above still work.")
    return None


class ShareLink:
    """The share link of this server: None until the tunnel is up, or when none could be made."""

    def __init__(self) -> None:
        self.url: str | None = None

    def open_in_background(self, port: int) -> None:
        """The tunnel may take seconds: the server starts meanwhile."""
        def open_() -> None:
            self.url = open_tunnel(port)

        threading.Thread(target=open_, name="share-tunnel", daemon=True).start()
