"""A run's multipart body, parsed as it streams in (files spooled to disk by the parser, as before), with what the
multipart parser lets pass silently refused with what is wrong: a body cut short (its last field would be
dropped), a part whose headers are too long (a very long file name). BodyLimit caps the body's size."""

from __future__ import annotations

from fastapi import Request
from python_multipart.multipart import DEFAULT_MAX_HEADER_SIZE, parse_options_header
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.types import Message

from app.errors import BadRequest

# What a part's Content-Disposition line holds besides the file name (`form-data; name="..."; filename=""`).
_HEADER_OVERHEAD = 128
_EPILOGUE = 1024  # bytes a client may send after the closing boundary (RFC 2046 allows an epilogue; few send one)


async def read_form(request: Request) -> FormData:
    _, params = parse_options_header(request.headers.get("content-type"))
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadRequest("The multipart body has no boundary: send Content-Type: multipart/form-data; boundary=...")
    closing = b"--" + boundary + b"--"
    keep = len(closing) + _EPILOGUE
    tail = bytearray()  # the body's last bytes, where its closing boundary must be

    async def receive() -> Message:
        message = await request.receive()
        if message["type"] == "http.request":
            tail.extend(message.get("body", b""))
            del tail[:-keep]
        return message

    try:
        form = await Request(request.scope, receive).form()
    except HTTPException as exc:
        if "header size" in str(_cause(exc)):
            raise BadRequest(f"A part's file name is too long: at most {DEFAULT_MAX_HEADER_SIZE - _HEADER_OVERHEAD:,} "
                             "characters (a part's header line holds at most "
                             f"{DEFAULT_MAX_HEADER_SIZE:,}). Send the file under a shorter name.") from None
        raise BadRequest(f"The multipart body cannot be read: {exc.detail}") from None
    if closing not in tail:
        await form.close()
        raise BadRequest("The multipart body is truncated: it does not end with its closing boundary "
                         f"(--{boundary.decode('latin-1')[:70]}--). Send the whole body.")
    return form


def _cause(exc: BaseException) -> BaseException | None:
    """The parser's own error, under Starlette's 'Invalid multipart data.'."""
    inner = exc.__context__
    while inner is not None and (inner.__cause__ or inner.__context__) is not None:
        inner = inner.__cause__ or inner.__context__
    return inner
