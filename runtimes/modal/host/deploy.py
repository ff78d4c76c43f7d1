"""Deploy and tear down a generated bundle with the modal SDK and CLI, with timeouts and clear errors.

Credentials are Modal's own: `modal token new` (~/.modal.toml) or MODAL_TOKEN_ID / MODAL_TOKEN_SECRET.
Without them, or without a route to Modal, `preflight()` fails within seconds and nothing is created.
The deploy itself runs `python -m modal deploy` in a subprocess: its output is the log users watch, and a
hung deploy can be killed without taking the app's process with it.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from runtimes.serverless.errors import DeployError
from runtimes.serverless.reach import unreachable

CONNECT_TIMEOUT_S = 5.0
SDK_TIMEOUT_S = 20.0  # one SDK call (create a secret, look up or stop an app)
DEPLOY_TIMEOUT_S = 45 * 60.0  # the first image build downloads torch and ComfyUI's requirements
_WEB_URL = re.compile(r"https://[A-Za-z0-9.-]+\.modal\.run\S*")
_TOKEN_HINT = ("run `modal token new` (it writes ~/.modal.toml), or set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET "
               "in the environment of the app")


class ModalCredentialsError(DeployError):
    pass


class ModalUnreachableError(DeployError):
    pass


def _config() -> tuple[str | None, str | None, str]:
    from modal.config import config

    return config.get("token_id"), config.get("token_secret"), config.get("server_url")


def credentials_present() -> bool:
    token_id, token_secret, _ = _config()
    return bool(token_id and token_secret)


async def preflight(connect_timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast, before anything is created: no token, or Modal's API cannot be reached."""
    if not credentials_present():
        raise ModalCredentialsError(f"No Modal credentials found: {_TOKEN_HINT}.")
    server = _config()[2]
    reason = await unreachable(server, connect_timeout)
    if reason is not None:
        raise ModalUnreachableError(f"Cannot reach Modal at {server} ({reason}). Check the network connection "
                                    "(and HTTPS_PROXY if you need one), then deploy again.")


async def _sdk(call: object, what: str, timeout: float = SDK_TIMEOUT_S) -> object:
    """Await one modal SDK call with a limit (the SDK retries a dead connection for about a minute)."""
    import modal.exception

    try:
        return await asyncio.wait_for(call, timeout)  # type: ignore[arg-type]
    except TimeoutError:
        raise ModalUnreachableError(f"Modal did not answer within {timeout:g} s while trying to {what}. Check "
                                    "the network and https://status.modal.com, then try again.") from None
    except modal.exception.AuthError as exc:
        raise ModalCredentialsError(f"Modal refused the credentials while trying to {what} ({exc}): "
                                    f"{_TOKEN_HINT}.") from None
    except modal.exception.ConnectionError as exc:
        raise ModalUnreachableError(f"Cannot connect to Modal to {what}: {exc}") from None


async def ensure_secret(name: str, env: dict[str, str], *, timeout: float = SDK_TIMEOUT_S) -> None:
    """Create the named modal.Secret if missing (an existing one is kept: its values stay as they were)."""
    import modal

    await _sdk(modal.Secret.objects.create.aio(name, env, allow_existing=True), f"create the secret '{name}'",
               timeout)


@dataclass
class DeployRun:
    """One `modal deploy` of a bundle: iterate `lines()` for the log; then `url` holds the endpoint."""

    bundle_dir: Path
    app_name: str
    timeout_s: float = DEPLOY_TIMEOUT_S
    redact: tuple[str, ...] = ()  # strings never to show (keys), replaced by ***
    url: str | None = None
    returncode: int | None = None
    tail: list[str] = field(default_factory=list)

    async def lines(self) -> AsyncIterator[str]:
        cmd = [sys.executable, "-m", "modal", "deploy", "modal_app.py", "--name", self.app_name]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TERM": "dumb", "COLUMNS": "160"}
        proc = await asyncio.create_subprocess_exec(*cmd, cwd=self.bundle_dir, env=env,
                                                    stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        assert proc.stdout is not None
        deadline = time.monotonic() + self.timeout_s
        try:
            while True:
                try:
                    raw = await asyncio.wait_for(proc.stdout.readline(), max(0.1, deadline - time.monotonic()))
                except TimeoutError:
                    raise DeployError(f"modal deploy did not finish within {self.timeout_s:g} s; it was stopped. "
                                      "Last output:\n" + "\n".join(self.tail)) from None
                if not raw:
                    break
                line = self._clean(raw.decode("utf-8", "replace"))
                if not line:
                    continue
                self.tail = [*self.tail[-29:], line]
                found = _WEB_URL.search(line)
                if found:
                    self.url = found.group(0).rstrip(".,)")
                yield line
            self.returncode = await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        if self.returncode != 0:
            raise DeployError(_explain_failure(self.returncode, self.tail))

    def _clean(self, text: str) -> str:
        line = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).rstrip()
        for secret in self.redact:
            if secret:
                line = line.replace(secret, "***")
        return line


def _explain_failure(code: int, tail: list[str]) -> str:
    text = "\n".join(tail)
    if "token" in text.lower() and ("missing" in text.lower() or "auth" in text.lower()):
        return f"modal deploy was refused (exit {code}): {_TOKEN_HINT}.\n{text}"
    return f"modal deploy failed (exit {code}). Last output:\n{text}"


async def web_url(app_name: str, function: str = "api") -> str | None:
    """The endpoint's URL of a deployed app, asked from Modal (when the deploy log did not show it)."""
    import modal

    fn = modal.Function.from_name(app_name, function)
    return await _sdk(fn.get_web_url.aio(), f"look up the URL of '{app_name}'")  # type: ignore[return-value]


async def teardown(app_name: str, *, timeout: float = SDK_TIMEOUT_S) -> bool:
    """Stop a deployed app (its containers end, its URL stops answering). False if Modal does not know it."""
    import modal
    import modal.exception

    await preflight()
    try:
        app = await _sdk(modal.App.lookup.aio(app_name), f"look up the app '{app_name}'", timeout)
    except modal.exception.NotFoundError:
        return False
    await _sdk(app.stop.aio(), f"stop the app '{app_name}'", timeout)  # type: ignore[attr-defined]
    return True
