"""A loopback stand-in for Comfy.org's API (the engine's `--comfy-api-base`): it refuses every call as the real one
refuses a caller without a valid key (401, JSON `message`) and records what each call carried, so a test sees what
an API node sent without anything leaving the machine."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class ApiCall:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names


class ComfyOrgApi:
    def __init__(self) -> None:
        self.calls: list[ApiCall] = []
        calls = self.calls

        class Handler(BaseHTTPRequestHandler):
            def _refuse(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                calls.append(ApiCall(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                body = json.dumps({"message": "Unauthorized: the API key is not valid."}).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _refuse  # http.server calls do_<METHOD>

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> ComfyOrgApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
