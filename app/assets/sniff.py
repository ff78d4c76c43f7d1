"""An upload's content type, read from its first bytes: a client's declared type is a claim, and serving bytes
under a type they are not (an HTML page as image/png) would let them run as something else."""

from __future__ import annotations

OCTET_STREAM = "application/octet-stream"

# (offset, signature, type), checked in order: the first match names the type.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"BM", "image/bmp"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (0, b"\x1aE\xdf\xa3", "video/webm"),  # Matroska/WebM
    (0, b"fLaC", "audio/flac"),
    (0, b"OggS", "audio/ogg"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"glTF", "model/gltf-binary"),
    (0, b"PK\x03\x04", "application/zip"),
)
_RIFF = {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}
_FTYP_AUDIO = (b"M4A ", b"M4B ")
_FTYP_IMAGE = {b"avif": "image/avif", b"avis": "image/avif", b"heic": "image/heic", b"heix": "image/heic",
               b"mif1": "image/heif"}


def sniff(data: bytes) -> str:
    """The type these bytes are, by their signature; text/plain for UTF-8 text; else application/octet-stream."""
    for offset, signature, kind in _SIGNATURES:
        if data[offset:offset + len(signature)] == signature:
            return kind
    if data[:4] == b"RIFF" and data[8:12] in _RIFF:
        return _RIFF[data[8:12]]
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in _FTYP_IMAGE:
            return _FTYP_IMAGE[brand]
        if brand in _FTYP_AUDIO:
            return "audio/mp4"
        return "video/quicktime" if brand == b"qt  " else "video/mp4"
    if len(data) >= 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0 and data[1] & 0x06:  # an MPEG audio frame
        return "audio/mpeg"
    if _is_safetensors(data):
        return "application/octet-stream"
    return "text/plain" if _is_text(data) else OCTET_STREAM


def _is_safetensors(data: bytes) -> bool:
    # an 8-byte little-endian header length, then a JSON header
    return len(data) > 9 and data[8:9] == b"{" and int.from_bytes(data[:8], "little") < len(data)


def _is_text(data: bytes) -> bool:
    head = data[:4096]
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # a character cut at the sample's end
    return True


def major(content_type: str) -> str:
    return content_type.split("/", 1)[0].strip().lower()


def checked_type(claimed: str, data: bytes) -> str | None:
    """The type to store and serve: the sniffed one. None when the client claims an image, video or audio file and
    the bytes are not one of that kind (the caller answers what is wrong)."""
    found = sniff(data)
    if major(claimed) in ("image", "video", "audio") and major(found) != major(claimed):
        return None
    return found
