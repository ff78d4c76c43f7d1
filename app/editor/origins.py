"""Which ComfyUI editors may send a workflow to Comfy Publisher ("Publish…" posts a form to this app).

The editor is served by an engine, on another origin than the app. The browser says where a form post comes
from (`Origin`); the app takes it from the engines it uses, from any loopback address (a ComfyUI on this machine,
whatever its port) and from the origins given with --editor-origin, and refuses it from anywhere else: no other
site can push a workflow into a logged-in studio.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit


def origin_of(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.netloc}".lower()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EditorOrigins:
    def __init__(self, engine_urls: Iterable[str], extra: Iterable[str] = ()) -> None:
        self._known = {origin_of(url) for url in [*engine_urls, *extra]}

    def allows(self, origin: str, own: str) -> bool:
        """`origin` as the browser sent it; `own` this app's origin as the request reached it."""
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        return _is_loopback(parts.hostname) or origin.lower() in self._known | {origin_of(own)}

    @staticmethod
    def refusal(origin: str) -> str:
        shown = origin[:100]
        return (f"Comfy Publisher does not take workflows from an editor at {shown}. If that ComfyUI is yours, "
                f"start Comfy Publisher with --editor-origin {shown}.")
