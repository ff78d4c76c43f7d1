"""A loopback server speaking the Hugging Face Hub's single-file download protocol, as huggingface_hub's real client
uses it: HEAD then GET on /{repo}/resolve/{revision}/{path}, X-Repo-Commit, ETag/X-Linked-Etag (the sha256 of an LFS
file), X-Linked-Size, Range -> 206, and the X-Error-Code the Hub sends with 401/403/404 (RepoNotFound,
RevisionNotFound, EntryNotFound, GatedRepo). Point HF_ENDPOINT at `url`."""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class HubRepo:
    files: dict[str, bytes] = field(default_factory=dict)  # path in repo -> content
    revisions: tuple[str, ...] = ("main",)
    gated_tokens: frozenset[str] | None = None  # gated: only these tokens may read it


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    range: str | None
    authorized: bool


class HubServer:
    def __init__(self) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.requests: list[Request] = []
        self.cut_after: int | None = None  # the next GET's connection is cut after this many body bytes
        self.lying_etag: str | None = None  # a sha256 served in place of the real one (a corrupt download)
        self.bytes_per_s: int | None = None  # a slow network: downloads are sent at this rate
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_HEAD(self) -> None:
                hub._answer(self, body=False)

            def do_GET(self) -> None:
                hub._answer(self, body=True)

            def log_message(self, *args: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, repo: str, path: str, content: bytes, **options: object) -> None:
        self.repos.setdefault(repo, HubRepo(**options)).files[path] = content  # type: ignore[arg-type]

    def app_env(self, hf_home: Path) -> dict[str, str | None]:
        """What an app process (tests.support.server.AppServer's env) needs to fetch from this hub, with neither the
        developer's token nor their Hugging Face cache."""
        return {"HF_ENDPOINT": self.url, "HF_HOME": str(hf_home), "HF_TOKEN": None}

    def gets(self) -> list[Request]:
        """The file downloads asked for (huggingface_hub also GETs /api/agent-harnesses, its own telemetry)."""
        return [r for r in self.requests if r.method == "GET" and "/resolve/" in r.path]

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, handler: BaseHTTPRequestHandler, *, body: bool) -> None:
        auth = handler.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else None
        self.requests.append(Request(handler.command, handler.path, handler.headers.get("range"), token is not None))
        found = _RESOLVE.match(handler.path.split("?")[0])
        repo = self.repos.get(found["repo"]) if found else None
        if found is None or repo is None:
            return _error(handler, 404, "RepoNotFound", "Repository not found")
        if repo.gated_tokens is not None and token not in repo.gated_tokens:
            status = 401 if token is None else 403
            return _error(handler, status, "GatedRepo", f"Access to model {found['repo']} is restricted.")
        if unquote(found["rev"]) not in repo.revisions:
            return _error(handler, 404, "RevisionNotFound", "Invalid rev id")
        content = repo.files.get(unquote(found["path"]))
        if content is None:
            return _error(handler, 404, "EntryNotFound", "Entry not found")
        start = 0
        if body and (ranged := re.match(r"bytes=(\d+)-$", handler.headers.get("range") or "")):
            start = int(ranged[1])
        handler.send_response(206 if start else 200)
        etag = self.lying_etag or hashlib.sha256(content).hexdigest()
        handler.send_header("X-Repo-Commit", COMMIT)
        handler.send_header("ETag", f'"{etag}"')
        handler.send_header("X-Linked-Etag", f'"{etag}"')
        handler.send_header("X-Linked-Size", str(len(content)))
        handler.send_header("Accept-Ranges", "bytes")
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
        handler.send_header("Content-Length", str(len(content) - start))
        handler.end_headers()
        if not body:
            return
        rest = content[start:]
        if self.cut_after is not None:
            cut, self.cut_after = self.cut_after, None
            handler.wfile.write(rest[:cut])
            handler.wfile.flush()
            handler.connection.shutdown(socket.SHUT_RDWR)
            handler.close_connection = True
            return
        if self.bytes_per_s is None:
            handler.wfile.write(rest)
            return
        step = max(1, self.bytes_per_s // 10)
        for start in range(0, len(rest), step):
            handler.wfile.write(rest[start:start + step])
            handler.wfile.flush()
            time.sleep(0.1)


def _error(handler: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
    body = f'{{"error": "{message}"}}'.encode()
    handler.send_response(status)
    handler.send_header("X-Error-Code", code)
    handler.send_header("X-Error-Message", message)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)
