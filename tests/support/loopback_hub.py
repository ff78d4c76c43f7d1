"""A loopback Hugging Face Hub for file downloads: HEAD and GET of /{owner}/{repo}/resolve/{revision}/{path}, with the
headers huggingface_hub reads (X-Repo-Commit, the LFS sha256 as X-Linked-Etag and ETag, X-Linked-Size). A file can
be served with other bytes than its announced sha256 (a corrupted download)."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

COMMIT = "c0ffee" + "0" * 34


@dataclass
class LoopbackHub:
    url: str = ""
    files: dict[tuple[str, str], tuple[bytes, bytes]] = field(default_factory=dict)  # -> (announced, served)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)

    def add(self, repo: str, path: str, content: bytes, *, served: bytes | None = None) -> str:
        """Publish `content` as `repo`/`path` (served as `served` when given); returns its sha256."""
        self.files[(repo, path)] = (content, content if served is None else served)
        return hashlib.sha256(content).hexdigest()

    def downloads(self) -> list[str]:
        """The file GETs (huggingface_hub also asks other /api/ paths, answered 404 here)."""
        return [path for method, path in self.requests if method == "GET" and "/resolve/" in path]


@contextmanager
def loopback_hub() -> Iterator[LoopbackHub]:
    hub = LoopbackHub()

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            hub.requests.append((self.command, self.path))
            match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", self.path.split("?")[0])
            found = hub.files.get((match[1], unquote(match[3]))) if match else None
            if found is None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            announced, served = found
            self.send_response(200)
            sha = hashlib.sha256(announced).hexdigest()
            for name, value in (("X-Repo-Commit", COMMIT), ("ETag", f'"{sha}"'), ("X-Linked-Etag", f'"{sha}"'),
                                ("X-Linked-Size", str(len(announced))), ("Content-Length", str(len(served))),
                                ("Accept-Ranges", "bytes")):
                self.send_header(name, value)
            self.end_headers()
            if body:
                self.wfile.write(served)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
