"""Webhook signing, delivery (against a real loopback HTTP receiver) and the master key / derived secrets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

import pytest

from app.auth.secrets import MasterKeyError, derive_secret, load_or_create_master_key, webhook_secret
from app.runs import webhooks
from app.runs.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    WebhookSender,
    check_webhook_url,
    sign,
    verify,
)

SECRET = derive_secret(b"\x01" * 32, "webhook:test-app")
PAYLOAD = {"run_id": "r-1", "status": "succeeded", "outputs": [{"url": "/files/a.png"}], "note": "héllo"}


# --- a real HTTP receiver on 127.0.0.1 ---------------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool
    at: float


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # sleep before answering (to trigger the sender's timeout)


class Receiver:
    """A minimal HTTP/1.1 server: records each request, verifies its signature, answers from a script."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.script: list[Reply] = []  # replies in order; 200 once exhausted
        self.received: list[Received] = []
        self.server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hooks/comfy?token=query-token"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            ok = verify(body, headers.get(SIGNATURE_HEADER.lower(), ""), self.secret)
            self.received.append(Received(headers, body, ok, time.monotonic()))
            reply = self.script.pop(0) if self.script else Reply()
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
            extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
            writer.write(
                f"HTTP/1.1 {reply.status} X\r\nContent-Length: 2\r\nConnection: close\r\n{extra}\r\nok".encode()
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver(SECRET)
    await server.start()
    yield server
    await server.stop()


def fast_sender(**overrides: float | int | bool) -> WebhookSender:
    options: dict = {"attempts": 5, "base_delay_s": 0.02, "max_delay_s": 1.0, "timeout_s": 2.0, "allow_private": True}
    options.update(overrides)
    return WebhookSender(**options)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- sign / verify -----------------------------------------------------------------------------------------------


def test_sign_format_and_verify_roundtrip() -> None:
    body = b'{"a":1}'
    header = sign(body, SECRET, 1_700_000_000)
    t, v1 = header.split(",")
    assert t == "t=1700000000"
    assert v1.startswith("v1=") and len(v1) == 3 + 64
    assert verify(body, header, SECRET, now=1_700_000_010)


def test_tampered_body_or_wrong_secret_fails() -> None:
    header = sign(b'{"a":1}', SECRET, 1_700_000_000)
    assert not verify(b'{"a":2}', header, SECRET, now=1_700_000_000)
    assert not verify(b'{"a":1}', header, "not-the-secret", now=1_700_000_000)
    # The timestamp is signed: moving it invalidates the signature.
    moved = header.replace("t=1700000000", "t=1700000001")
    assert not verify(b'{"a":1}', moved, SECRET, now=1_700_000_000)


def test_old_or_future_timestamp_fails() -> None:
    body = b"{}"
    header = sign(body, SECRET, 1_700_000_000)
    assert verify(body, header, SECRET, now=1_700_000_300)
    assert not verify(body, header, SECRET, now=1_700_000_301)  # older than the 300 s tolerance
    assert not verify(body, header, SECRET, now=1_699_999_000)  # far in the future
    assert verify(body, header, SECRET, now=1_700_000_900, tolerance_s=1000)
    assert not verify(body, sign(body, SECRET, int(time.time()) - 3600), SECRET)


@pytest.mark.parametrize("header", ["", "garbage", "t=abc,v1=00", "v1=00", "t=1700000000", "t=+1700000000,v1=00"])
def test_malformed_headers_fail_without_raising(header: str) -> None:
    assert not verify(b"{}", header, SECRET, now=1_700_000_000)


def test_any_of_several_signatures_may_match() -> None:
    body = b"{}"
    good = sign(body, SECRET, 1_700_000_000)
    header = f"{good},v1={'0' * 64}"  # e.g. signed with a new and an old secret during rotation
    assert verify(body, header, SECRET, now=1_700_000_000)
    assert not verify(body, f"t=1700000000,v1={'0' * 64}", SECRET, now=1_700_000_000)


def test_docstring_receiver_snippet_agrees_with_verify() -> None:
    doc = webhooks.__doc__ or ""
    snippet = doc.split("import hashlib, hmac, time", 1)[1].split("\n\nVerify the raw", 1)[0]
    namespace: dict = {}
    exec("import hashlib, hmac, time\n" + "\n".join(line[4:] for line in snippet.splitlines()), namespace)
    body = json.dumps(PAYLOAD).encode()
    header = sign(body, SECRET, int(time.time()))
    assert namespace["verify"](body, header, SECRET)
    assert not namespace["verify"](body + b" ", header, SECRET)
    assert not namespace["verify"](body, sign(body, SECRET, int(time.time()) - 1000), SECRET)


# --- delivery ----------------------------------------------------------------------------------------------------


async def test_delivery_is_signed_and_verifies(receiver: Receiver) -> None:
    result = await fast_sender().deliver(receiver.url, PAYLOAD, SECRET, "run.succeeded")
    assert result.delivered and result.attempts == 1 and result.status == 200 and result.error is None
    (got,) = receiver.received
    assert got.verified
    assert json.loads(got.body) == PAYLOAD
    assert got.headers["content-type"] == "application/json"
    assert got.headers[EVENT_HEADER.lower()] == "run.succeeded"
    assert got.headers[DELIVERY_HEADER.lower()] == result.delivery_id
    # The receiver, knowing the secret, accepts it; with any other secret it would not.
    assert not verify(got.body, got.headers[SIGNATURE_HEADER.lower()], "other-secret")


async def test_5xx_is_retried_with_same_delivery_id_and_growing_delays(receiver: Receiver) -> None:
    receiver.script = [Reply(500), Reply(503)]
    result = await fast_sender(base_delay_s=0.05).deliver(receiver.url, PAYLOAD, SECRET, "run.failed")
    assert result.delivered and result.attempts == 3 and result.status == 200
    assert len(receiver.received) == 3
    assert all(r.verified for r in receiver.received)
    assert {r.headers[DELIVERY_HEADER.lower()] for r in receiver.received} == {result.delivery_id}
    assert [r.headers["comfy-publisher-attempt"] for r in receiver.received] == ["1", "2", "3"]
    first, second = result.delays
    assert 0.025 <= first < 0.05 <= second < 0.1  # backoff 0.05 then 0.1, each with jitter in [d/2, d)
    gaps = [b.at - a.at for a, b in zip(receiver.received, receiver.received[1:], strict=False)]
    assert gaps[0] >= first * 0.9 and gaps[1] >= second * 0.9 and gaps[1] > gaps[0]


async def test_4xx_is_not_retried(receiver: Receiver) -> None:
    receiver.script = [Reply(400)]
    result = await fast_sender().deliver(receiver.url, PAYLOAD, SECRET, "run.cancelled")
    assert not result.delivered and result.attempts == 1 and result.status == 400
    assert result.error is not None and "400" in result.error
    assert len(receiver.received) == 1


async def test_redirect_is_not_followed(receiver: Receiver) -> None:
    receiver.script = [Reply(302, {"Location": "http://169.254.169.254/latest/meta-data?x=1"})]
    result = await fast_sender().deliver(receiver.url, PAYLOAD, SECRET, "run.succeeded")
    assert not result.delivered and result.attempts == 1 and result.status == 302
    assert result.error is not None and "not followed" in result.error
    assert len(receiver.received) == 1


async def test_429_retry_after_is_honoured_up_to_max_delay(receiver: Receiver) -> None:
    # Backoff alone would wait ~0.01 s; Retry-After asks for 1 s (capped to max_delay_s) and 0 s.
    receiver.script = [Reply(429, {"Retry-After": "1"}), Reply(429, {"Retry-After": "0"})]
    sender = fast_sender(base_delay_s=0.01, max_delay_s=0.3)
    result = await sender.deliver(receiver.url, PAYLOAD, SECRET, "run.succeeded")
    assert result.delivered and result.attempts == 3
    assert result.delays == (0.3, 0.0)
    assert receiver.received[1].at - receiver.received[0].at >= 0.28


def test_retry_after_parsing() -> None:
    parse = webhooks._parse_retry_after
    assert parse(None) is None and parse("") is None and parse("soon") is None and parse("nan") is None
    assert parse("7") == 7.0 and parse("-3") == 0.0
    assert parse(formatdate(1_700_000_030, usegmt=True), now=1_700_000_000) == pytest.approx(30.0)


async def test_dead_port_gives_up_after_attempts() -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    result = await fast_sender(attempts=3, base_delay_s=0.01).deliver(url, PAYLOAD, SECRET, "run.timed_out")
    assert not result.delivered and result.attempts == 3 and result.status is None
    assert result.error is not None and "Connect" in result.error
    assert len(result.delays) == 2


async def test_slow_receiver_times_out_and_is_retried(receiver: Receiver) -> None:
    receiver.script = [Reply(200, delay_s=1.0)]
    result = await fast_sender(attempts=2, timeout_s=0.2).deliver(receiver.url, PAYLOAD, SECRET, "run.succeeded")
    assert result.delivered and result.attempts == 2
    assert len(receiver.received) == 2


async def test_secret_and_signature_are_never_logged(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.script = [Reply(500), Reply(400)]
    await fast_sender(base_delay_s=0.01).deliver(receiver.url, PAYLOAD, SECRET, "run.failed")
    await fast_sender(attempts=2, base_delay_s=0.01).deliver(
        f"http://127.0.0.1:{free_port()}/h?token=query-token", PAYLOAD, SECRET, "run.failed"
    )
    signatures = [r.headers[SIGNATURE_HEADER.lower()].split("v1=")[1] for r in receiver.received]
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name == "app.runs.webhooks")
    assert ours, "deliveries should log something"
    for leaked in [SECRET, *signatures]:
        assert leaked not in caplog.text  # not in any logger's output, httpx and httpcore debug logs included
    # Our own lines also leave out query strings (tokens); httpx's own INFO request line is httpx's business.
    assert "query-token" not in ours


async def test_unknown_event_and_unsafe_url_at_delivery() -> None:
    sender = WebhookSender(attempts=1)  # allow_private=False, the production default
    with pytest.raises(ValueError, match="unknown webhook event"):
        await sender.deliver("https://example.com/h", PAYLOAD, SECRET, "run.exploded")
    result = await sender.deliver("http://127.0.0.1:9/h", PAYLOAD, SECRET, "run.succeeded")
    assert not result.delivered and result.attempts == 0
    assert result.error is not None and "--allow-private-webhooks" in result.error


async def test_host_name_resolving_to_private_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fake_resolve(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "127.0.0.1"]

    monkeypatch.setattr(webhooks, "_resolve", fake_resolve)
    result = await WebhookSender(attempts=3).deliver("https://rebind.example/h", PAYLOAD, SECRET, "run.succeeded")
    assert not result.delivered and result.attempts == 1 and result.delays == ()
    assert result.error is not None and "resolves to a loopback address" in result.error


# --- background deliveries ---------------------------------------------------------------------------------------


async def test_send_in_background_and_aclose_waits(receiver: Receiver) -> None:
    sender = fast_sender()
    results: list[webhooks.DeliveryResult] = []

    async def record(result: webhooks.DeliveryResult) -> None:
        results.append(result)

    tasks = [
        sender.send_in_background(receiver.url, {**PAYLOAD, "i": i}, SECRET, "run.succeeded", on_result=record)
        for i in range(3)
    ]
    assert sender.pending == 3
    await sender.aclose()
    assert sender.pending == 0
    assert all(task.done() and task.result().delivered for task in tasks)
    assert len(results) == 3 and len(receiver.received) == 3
    with pytest.raises(RuntimeError, match="closed"):
        sender.send_in_background(receiver.url, PAYLOAD, SECRET, "run.succeeded")


async def test_aclose_cancels_after_grace_period(receiver: Receiver) -> None:
    receiver.script = [Reply(200, delay_s=5.0)]
    sender = fast_sender(timeout_s=10.0)
    task = sender.send_in_background(receiver.url, PAYLOAD, SECRET, "run.succeeded")
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await sender.aclose(grace_s=0.1)
    assert time.monotonic() - started < 1.0
    assert task.cancelled() and sender.pending == 0


# --- URL checks --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "file:///etc/passwd", "example.com/hook", "http://", "http:///path", "", "http://exa mple"],
)
def test_check_url_refuses_bad_urls_even_when_private_allowed(url: str) -> None:
    with pytest.raises(ValueError, match=r"http|host|empty"):
        check_webhook_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://LOCALHOST./hook",
        "http://api.localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.1.10/hook",
        "http://172.16.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[::1]/hook",
        "http://[fe80::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://127.1/hook",
        "http://2130706433/hook",
        "http://0x7f.0.0.1/hook",
    ],
)
def test_check_url_refuses_private_targets_unless_allowed(url: str) -> None:
    with pytest.raises(ValueError, match="--allow-private-webhooks"):
        check_webhook_url(url, allow_private=False)
    assert check_webhook_url(url, allow_private=True)


def test_check_url_messages_and_accepted_urls() -> None:
    with pytest.raises(ValueError, match=r"http:// or https://.*'ftp'"):
        check_webhook_url("ftp://example.com", allow_private=False)
    with pytest.raises(ValueError, match="no host"):
        check_webhook_url("https:///x", allow_private=False)
    with pytest.raises(ValueError, match="loopback"):
        check_webhook_url("http://127.0.0.1/", allow_private=False)
    with pytest.raises(ValueError, match="link-local"):
        check_webhook_url("http://169.254.169.254/", allow_private=False)
    assert check_webhook_url(" https://example.com/hooks?x=1 ", allow_private=False) == "https://example.com/hooks?x=1"
    assert check_webhook_url("http://93.184.216.34:8080/h", allow_private=False) == "http://93.184.216.34:8080/h"
    assert check_webhook_url("https://user:pw@hooks.example.org/a", allow_private=False)


# --- master key and derived secrets ------------------------------------------------------------------------------


def test_master_key_created_0600_and_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data" / "nested"
    key = load_or_create_master_key(data_dir)
    path = data_dir / "secret.key"
    assert len(key) == 32 and path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_master_key(data_dir) == key
    assert [p.name for p in data_dir.iterdir()] == ["secret.key"]  # no temporary file left behind


def test_master_key_created_0600_despite_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        load_or_create_master_key(tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600


def test_master_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    load_or_create_master_key(tmp_path)
    path = tmp_path / "secret.key"
    path.chmod(0o644)
    with pytest.raises(MasterKeyError, match=f"chmod 600 {path}"):
        load_or_create_master_key(tmp_path)
    path.chmod(0o600)
    assert load_or_create_master_key(tmp_path) == path.read_bytes()


def test_master_key_of_wrong_size_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    path.write_bytes(b"short")
    path.chmod(0o600)
    with pytest.raises(MasterKeyError, match="expected 32"):
        load_or_create_master_key(tmp_path)


def test_derive_secret_is_stable_and_differs_per_purpose_and_master() -> None:
    master = bytes(range(32))
    a = derive_secret(master, "webhook:app-a")
    assert a == derive_secret(bytes(range(32)), "webhook:app-a")
    assert len(a) == 64 and int(a, 16) >= 0
    assert a != derive_secret(master, "webhook:app-b")
    assert a != derive_secret(bytes(range(1, 33)), "webhook:app-a")
    assert webhook_secret(master, "app-a") == a
    with pytest.raises(ValueError):
        derive_secret(master, "")
    with pytest.raises(ValueError):
        derive_secret(b"short", "webhook:app-a")
