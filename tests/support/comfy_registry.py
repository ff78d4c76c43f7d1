"""A loopback Comfy Registry speaking the part of api.comfy.org a pinned install uses (registry-backend's
openapi.yml): GET /nodes/{id}/install?version=X.Y.Z -> a NodeVersion whose downloadUrl is a zip it also serves;
an unknown id or version -> 404 {"message": ...}; a version that is not x.y.z -> 400. Point COMFY_REGISTRY_URL at
`url`."""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class RegistryVersion:
    zip_bytes: bytes
    deprecated: bool = False
    status: str = "NodeVersionStatusActive"


@dataclass
class LoopbackRegistry:
    versions: dict[tuple[str, str], RegistryVersion] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                registry.requests.append(self.path)
                registry._answer(self)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, pack_id: str, version: str, zip_bytes: bytes, **extra: Any) -> None:
        self.versions[(pack_id, version)] = RegistryVersion(zip_bytes, **extra)

    def __enter__(self) -> LoopbackRegistry:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        if match := re.fullmatch(r"/nodes/([^/]+)/install", parts.path):
            pack_id = unquote(match[1])
            version = parse_qs(parts.query).get("version", [""])[0]
            if not re.fullmatch(r"\d+\.\d+\.\d+", version):
                return _json(handler, 400, {"error": "", "message": "Invalid version"})
            found = self.versions.get((pack_id, version))
            if found is None:
                return _json(handler, 404, {"error": "", "message": "Not found"})
            return _json(handler, 200, {
                "id": str(uuid.uuid4()), "version": version, "node_id": pack_id, "changelog": "",
                "createdAt": "2026-01-01T00:00:00Z", "dependencies": [], "deprecated": found.deprecated,
                "status": found.status, "status_reason": "",
                "downloadUrl": f"{self.url}/files/{pack_id}-{version}.zip"})
        if match := re.fullmatch(r"/files/(.+)-(\d+\.\d+\.\d+)\.zip", parts.path):
            found = self.versions.get((unquote(match[1]), match[2]))
            if found is not None:
                handler.send_response(200)
                handler.send_header("Content-Type", "application/zip")
                handler.send_header("Content-Length", str(len(found.zip_bytes)))
                handler.end_headers()
                handler.wfile.write(found.zip_bytes)
                return None
        return _json(handler, 404, {"error": "", "message": "Not found"})


def _json(handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
