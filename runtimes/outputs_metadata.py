"""Take out what the engine embeds in its output files about the workflow that made them.

ComfyUI's save nodes write the whole prompt (checkpoint, negative prompt, every setting) and the editor's
workflow into the files: PNG text chunks `prompt` and `workflow`, WEBP EXIF tags, and the tags of audio and video
containers (runtimes.container_metadata). A private app's outputs must not carry them. Only those metadata blocks
are dropped: the image data is copied byte for byte, so the pixels (and colour profile, animation) stay exactly as
the engine wrote them, with no re-encoding cost.
"""

from __future__ import annotations

import logging
import struct

from runtimes import container_metadata

log = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_DROPPED = {b"tEXt", b"zTXt", b"iTXt", b"eXIf"}  # text (ComfyUI's prompt/workflow) and EXIF
_WEBP_DROPPED = {b"EXIF", b"XMP "}
_VP8X_EXIF, _VP8X_XMP = 0x08, 0x04  # VP8X flags announcing those chunks
_JPEG_DROPPED = {0xE1, 0xFE}  # APP1 (EXIF, XMP) and COM


def strip_metadata(data: bytes, mime: str) -> bytes:
    """`data` without embedded metadata where its format has some (PNG, WEBP, JPEG, FLAC, MP3, Opus, MP4, Matroska);
    other files unchanged."""
    strip = _STRIPPERS.get(mime)
    if strip is None:
        return data
    try:
        return strip(data)
    except (ValueError, struct.error, IndexError) as exc:  # not what its name says: left as it is, and said so
        log.warning("could not strip the metadata of a %s output (%s); it is kept as the engine wrote it", mime, exc)
        return data


def _strip_png(data: bytes) -> bytes:
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("no PNG signature")
    out, pos = [PNG_SIGNATURE], len(PNG_SIGNATURE)
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4:pos + 8]
        end = pos + 12 + length  # length, type, data, CRC
        if end > len(data):
            raise ValueError(f"PNG chunk {kind!r} runs past the end of the file")
        if kind not in _PNG_DROPPED:
            out.append(data[pos:end])
        pos = end
        if kind == b"IEND":
            break
    return b"".join(out)


def _strip_webp(data: bytes) -> bytes:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("no RIFF/WEBP header")
    chunks, pos = [], 12
    while pos + 8 <= len(data):
        kind = data[pos:pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        end = pos + 8 + size + (size & 1)  # chunks are padded to an even size
        if pos + 8 + size > len(data):
            raise ValueError(f"WEBP chunk {kind!r} runs past the end of the file")
        chunk = data[pos:end]
        if kind == b"VP8X":  # the extended header must no longer announce the dropped chunks
            chunk = chunk[:8] + bytes([chunk[8] & ~(_VP8X_EXIF | _VP8X_XMP) & 0xFF]) + chunk[9:]
        if kind not in _WEBP_DROPPED:
            chunks.append(chunk)
        pos = end
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _strip_jpeg(data: bytes) -> bytes:
    if data[:2] != b"\xff\xd8":
        raise ValueError("no JPEG start marker")
    out, pos = [data[:2]], 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"no JPEG marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: the image data follows, to the end
            break
        (length,) = struct.unpack_from(">H", data, pos + 2)
        end = pos + 2 + length
        if marker not in _JPEG_DROPPED:
            out.append(data[pos:end])
        pos = end
    out.append(data[pos:])
    return b"".join(out)


_STRIPPERS = {
    "image/png": _strip_png, "image/apng": _strip_png, "image/webp": _strip_webp, "image/jpeg": _strip_jpeg,
    "audio/flac": container_metadata.strip_flac, "audio/mpeg": container_metadata.strip_mp3,
    # .opus and .ogg are served as audio/ogg; ComfyUI writes Opus into them (a Vorbis file is kept as it is)
    "audio/ogg": container_metadata.strip_ogg_opus,
    "video/mp4": container_metadata.strip_mp4, "video/quicktime": container_metadata.strip_mp4,
    "audio/mp4": container_metadata.strip_mp4,
    "video/webm": container_metadata.strip_matroska, "video/x-matroska": container_metadata.strip_matroska,
}
