"""A loopback Comfy Registry: the parts of api.comfy.org that installing a pack uses (GET /nodes/{id}/install?version=
answers a NodeVersion whose downloadUrl is a zip of the pack's files at its root, served here too)."""

from __future__ import annotations

import io
import json
import re
import threading
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class LoopbackRegistry:
    url: str = ""
    zips: dict[tuple[str, str], bytes] = field(default_factory=dict)
    statuses: dict[tuple[str, str], str] = field(default_factory=dict)  # default NodeVersionStatusActive
    deprecated: set[tuple[str, str]] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)

    def add(self, node_id: str, version: str, files: Mapping[str, str | bytes]) -> None:
        """Publish `node_id`@`version`: `files` (path in the pack -> content) zipped at the root."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for path, content in files.items():
                archive.writestr(path, content)
        self.zips[(node_id, version)] = buffer.getvalue()


@contextmanager
def loopback_registry() -> Iterator[LoopbackRegistry]:
    registry = LoopbackRegistry()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            registry.requests.append(self.path)
            parts = urlsplit(self.path)
            install = re.fullmatch(r"/nodes/([^/]+)/install", parts.path)
            download = re.fullmatch(r"/files/(.+)-(\d+\.\d+\.\d+)\.zip", parts.path)
            if install:
                node_id, version = install[1], parse_qs(parts.query).get("version", [""])[0]
                if not re.fullmatch(r"\d+\.\d+\.\d+", version):
                    return self._json(400, {"error": "", "message": "Invalid version"})
                if (node_id, version) not in registry.zips:
                    return self._json(404, {"error": "", "message": "Not found"})
                return self._json(200, {
                    "id": "0b5f7c1e-0000-4000-8000-000000000000", "version": version, "node_id": node_id,
                    "downloadUrl": f"{registry.url}/files/{node_id}-{version}.zip", "dependencies": [],
                    "deprecated": (node_id, version) in registry.deprecated, "changelog": "",
                    "status": registry.statuses.get((node_id, version), "NodeVersionStatusActive"),
                    "createdAt": "2026-01-01T00:00:00Z"})
            if download and (download[1], download[2]) in registry.zips:
                body = registry.zips[(download[1], download[2])]
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return None
            return self._json(404, {"error": "", "message": "Not found"})

        def _json(self, code: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    registry.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield registry
    finally:
        server.shutdown()
        server.server_close()
