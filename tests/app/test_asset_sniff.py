"""An upload's content type comes from its bytes, never from the client's claim."""

from __future__ import annotations

import io
import time
import wave

import pytest
from PIL import Image

from app.assets.sniff import checked_type, sniff
from app.v2.idempotency import SingleUseKeys


def _image(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(out, format=fmt)
    return out.getvalue()


def _wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 80)
    return out.getvalue()


@pytest.mark.parametrize(("data", "kind"), [
    (_image("PNG"), "image/png"), (_image("JPEG"), "image/jpeg"), (_image("WEBP"), "image/webp"),
    (_image("GIF"), "image/gif"), (_wav(), "audio/wav"), (b"\0\0\0\x18ftypisom\0\0\0\0", "video/mp4"),
    (b"\x1aE\xdf\xa3\x01\0\0\0", "video/webm"), (b"ID3\x04\0\0", "audio/mpeg"), ("héllo\n".encode(), "text/plain"),
    (b"\0\1\2\3", "application/octet-stream"),
])
def test_types_are_read_from_the_bytes(data: bytes, kind: str) -> None:
    assert sniff(data) == kind


def test_a_claimed_media_type_must_match_the_bytes() -> None:
    assert checked_type("image/jpeg", _image("PNG")) == "image/png"  # an image all the same: served as what it is
    assert checked_type("image/png", b"<svg onload=alert(1)>") is None
    assert checked_type("audio/wav", _image("PNG")) is None
    assert checked_type("text/html", b"<html>") == "text/plain"  # never served as a page


def test_an_idempotency_key_is_single_use_until_it_expires() -> None:
    keys = SingleUseKeys(lifetime_s=0.05)
    assert keys.claim("1:k") and not keys.claim("1:k") and keys.claim("2:k")
    keys.release("2:k")
    assert keys.claim("2:k")
    time.sleep(0.06)
    assert keys.claim("1:k")
    few = SingleUseKeys(max_keys=2)  # past its size, the oldest key is forgotten first
    assert few.claim("a") and few.claim("b") and few.claim("c")
    assert few.claim("a") and not few.claim("c")
