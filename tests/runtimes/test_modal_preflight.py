"""Deploying with credentials but no way to Modal fails within seconds, before anything is created."""

from __future__ import annotations

import socket
import time

import pytest

from runtimes.modal.host import deploy


def _closed_port() -> int:
    with socket.socket() as sock:  # bound then closed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_no_credentials_is_refused_at_once(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("MODAL_TOKEN_ID", raising=False)
    monkeypatch.delenv("MODAL_TOKEN_SECRET", raising=False)
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(tmp_path) + "/none.toml")
    with pytest.raises(deploy.ModalCredentialsError, match="No Modal credentials"):
        await deploy.preflight()


async def test_credentials_but_modal_unreachable_fails_fast_and_says_where(monkeypatch: pytest.MonkeyPatch) -> None:
    server = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-not-a-real-token")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-not-a-real-secret")
    monkeypatch.setenv("MODAL_SERVER_URL", server)
    began = time.monotonic()
    with pytest.raises(deploy.ModalUnreachableError) as raised:
        await deploy.preflight()
    assert time.monotonic() - began < deploy.CONNECT_TIMEOUT_S + 1
    assert server in str(raised.value) and "network" in str(raised.value)
    assert "as-not-a-real-secret" not in str(raised.value)
