"""Take the workflow out of the audio and video files the engine saves.

ComfyUI's SaveAudio, SaveAudioMP3, SaveAudioOpus, SaveVideo and SaveWEBM write the prompt and the editor's workflow as
container tags: FLAC and Opus comments, an ID3 tag, MP4 `moov` metadata, Matroska `Tags`. Each stripper finds those
tags and blanks them in place under the container's own padding element (FLAC PADDING, Opus comment padding, MP4
`free`, Matroska `Void`), so no byte offset in the file moves (chunk offsets, seek tables, cues stay right) and the
coded audio and video are the bytes the engine wrote. An MP3 simply loses its ID3 tags: nothing in it points past them.

Each raises ValueError when the file is not laid out as its format says; the caller then keeps it as it is.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

# --- FLAC: metadata blocks after "fLaC" -----------------------------------------------------------------------------

_FLAC_VORBIS_COMMENT, _FLAC_PADDING = 4, 1


def strip_flac(data: bytes) -> bytes:
    if not data.startswith(b"fLaC"):
        raise ValueError("no fLaC signature")
    out, pos, last = bytearray(data), 4, False
    while not last:
        if pos + 4 > len(out):
            raise ValueError("FLAC metadata runs past the end of the file")
        header = out[pos]
        last, kind, (length,) = bool(header & 0x80), header & 0x7F, struct.unpack(">I", b"\0" + out[pos + 1:pos + 4])
        if pos + 4 + length > len(out):
            raise ValueError(f"FLAC metadata block {kind} runs past the end of the file")
        if kind == _FLAC_VORBIS_COMMENT:  # the tags become padding of the same size
            out[pos] = (header & 0x80) | _FLAC_PADDING
            out[pos + 4:pos + 4 + length] = bytes(length)
        pos += 4 + length
    return bytes(out)


# --- MP3: ID3v2 before the frames, ID3v1 after them -----------------------------------------------------------------


def strip_mp3(data: bytes) -> bytes:
    start = 0
    while data[start:start + 3] == b"ID3":
        if len(data) < start + 10:
            raise ValueError("ID3 tag header cut short")
        flags, size = data[start + 5], data[start + 6:start + 10]
        if any(byte & 0x80 for byte in size):
            raise ValueError("ID3 tag size is not a syncsafe integer")
        length = (size[0] << 21) | (size[1] << 14) | (size[2] << 7) | size[3]
        start += 10 + length + (10 if flags & 0x10 else 0)  # header, body, footer
    end = len(data) - 128 if len(data) - start >= 128 and data[-128:-125] == b"TAG" else len(data)
    if start + 1 >= end or data[start] != 0xFF or data[start + 1] & 0xE0 != 0xE0:
        raise ValueError("no MPEG audio frame after the ID3 tags")
    return data[start:end]


# --- Ogg Opus: the comment header packet (RFC 7845) -----------------------------------------------------------------


# Ogg's CRC-32 (polynomial 0x04C11DB7, initial value 0, no reflection, no final XOR) in C speed: zlib's CRC-32 is
# the same polynomial reflected, so it is zlib's on bit-reversed bytes, reversed back (a comment page of a large
# workflow is tens of KB, which a byte loop in Python takes tens of ms over).
_BIT_REVERSED = bytes(int(f"{byte:08b}"[::-1], 2) for byte in range(256))


def _ogg_crc(page: bytes | bytearray) -> int:
    reflected = zlib.crc32(bytes(page).translate(_BIT_REVERSED), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{reflected:032b}"[::-1], 2)


def _ogg_pages(data: bytes | bytearray) -> Iterator[tuple[int, int, list[int]]]:
    """(start, end, lacing values) of each page."""
    pos = 0
    while pos < len(data):
        if data[pos:pos + 4] != b"OggS" or pos + 27 > len(data):
            raise ValueError(f"no Ogg page at byte {pos}")
        count = data[pos + 26]
        lacing = list(data[pos + 27:pos + 27 + count])
        end = pos + 27 + count + sum(lacing)
        if end > len(data):
            raise ValueError(f"Ogg page at byte {pos} runs past the end of the file")
        yield pos, end, lacing
        pos = end


def strip_ogg_opus(data: bytes) -> bytes:
    """The comment packet keeps its length (so every page keeps its layout) with its vendor string, no comments, and
    zeros after them: padding, as RFC 7845 section 5.2 allows. Only the pages that carry it are rewritten."""
    out = bytearray(data)
    pages = list(_ogg_pages(out))
    if len({bytes(out[start + 14:start + 18]) for start, _, _ in pages}) != 1:
        raise ValueError("more than one Ogg stream")
    if len(pages) < 2 or out[pages[0][0] + 28:pages[0][0] + 36] != b"OpusHead":
        raise ValueError("not Ogg Opus (no OpusHead first)")
    comment_pages = []  # (page start, its body's start, page end) of each page of packet 2, the comment header
    for start, end, lacing in pages[1:]:
        comment_pages.append((start, start + 27 + len(lacing), end))
        if lacing[-1] < 255:  # the packet ends on this page
            if any(value < 255 for value in lacing[:-1]):
                raise ValueError("the Opus comment page carries another packet")
            break
    else:
        raise ValueError("the Opus comment packet never ends")
    packet = b"".join(bytes(out[body:end]) for _, body, end in comment_pages)
    if not packet.startswith(b"OpusTags") or len(packet) < 16:
        raise ValueError("no OpusTags packet second")
    (vendor_length,) = struct.unpack_from("<I", packet, 8)
    if 12 + vendor_length + 4 > len(packet):
        raise ValueError("OpusTags vendor string runs past its packet")
    blank = packet[:12 + vendor_length] + struct.pack("<I", 0)  # the vendor, then no comments
    blank += bytes(len(packet) - len(blank))
    pos = 0
    for start, body, end in comment_pages:
        out[body:end] = blank[pos:pos + end - body]
        pos += end - body
        out[start + 22:start + 26] = bytes(4)  # a page's CRC is computed with its own field zeroed
        out[start + 22:start + 26] = struct.pack("<I", _ogg_crc(out[start:end]))
    return bytes(out)


# --- MP4 / QuickTime: boxes; the tags live in moov's (and each track's) udta and meta -------------------------------

_MP4_TAG_BOXES = {b"udta", b"meta"}
_MP4_CONTAINERS = {b"moov", b"trak"}


def _mp4_boxes(data: bytes | bytearray, start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, box start, payload start, box end) of each box between start and end."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise ValueError(f"MP4 box {kind!r} cut short")
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:  # to the end of its parent
            size = end - pos
        if size < header or pos + size > end:
            raise ValueError(f"MP4 box {kind!r} at byte {pos} has a bad size")
        yield kind, pos, pos + header, pos + size
        pos += size


def strip_mp4(data: bytes) -> bytes:
    out = bytearray(data)
    found_moov = False

    def blank(start: int, end: int) -> None:
        for kind, box, payload, box_end in _mp4_boxes(out, start, end):
            if kind in _MP4_TAG_BOXES:  # becomes a free box of the same size: chunk offsets stay right
                out[box + 4:box + 8] = b"free"
                out[payload:box_end] = bytes(box_end - payload)
            elif kind in _MP4_CONTAINERS:
                blank(payload, box_end)

    for kind, _, payload, box_end in _mp4_boxes(out, 0, len(out)):
        if kind == b"moov":
            found_moov = True
            blank(payload, box_end)
    if not found_moov:
        raise ValueError("no moov box")
    return bytes(out)


# --- Matroska / WebM: EBML; the tags are the Segment's Tags element ------------------------------------------------

_EBML, _SEGMENT, _TAGS, _SEEK_HEAD, _SEEK, _SEEK_ID = 0x1A45DFA3, 0x18538067, 0x1254C367, 0x114D9B74, 0x4DBB, 0x53AB
_VOID = 0xEC
_UNKNOWN = -1


def _vint(data: bytes | bytearray, pos: int, keep_marker: bool) -> tuple[int, int]:
    """(value, length) of the variable-size integer at pos: an element ID keeps its marker bit, a size does not (and
    an all-ones size is _UNKNOWN)."""
    if pos >= len(data) or data[pos] == 0:
        raise ValueError(f"no EBML number at byte {pos}")
    length = 9 - data[pos].bit_length()
    if pos + length > len(data):
        raise ValueError(f"EBML number at byte {pos} runs past the end of the file")
    value = int.from_bytes(data[pos:pos + length], "big")
    if keep_marker:
        return value, length
    value &= (1 << (7 * length)) - 1
    return (_UNKNOWN if value == (1 << (7 * length)) - 1 else value), length


def _ebml_elements(data: bytes | bytearray, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(ID, element start, payload start, element end) of each element between start and end; an element of
    unknown size (a live stream's Segment) reaches to end."""
    pos = start
    while pos < end:
        element_id, id_length = _vint(data, pos, keep_marker=True)
        size, size_length = _vint(data, pos + id_length, keep_marker=False)
        payload = pos + id_length + size_length
        element_end = end if size == _UNKNOWN else payload + size
        if element_end > end:
            raise ValueError(f"EBML element {element_id:#x} at byte {pos} runs past its parent")
        yield element_id, pos, payload, element_end
        if size == _UNKNOWN and element_id != _SEGMENT:
            raise ValueError(f"EBML element {element_id:#x} at byte {pos} has an unknown size")
        pos = element_end


def _void(length: int) -> bytes:
    """A Void element exactly `length` bytes long (at least 2)."""
    if length - 2 <= 126:
        return bytes([_VOID, 0x80 | (length - 2)]) + bytes(length - 2)
    return bytes([_VOID, 0x01]) + (length - 9).to_bytes(7, "big") + bytes(length - 9)


def strip_matroska(data: bytes) -> bytes:
    out = bytearray(data)
    elements = list(_ebml_elements(out, 0, len(out)))
    if not elements or elements[0][0] != _EBML:
        raise ValueError("no EBML header")
    segments = [(payload, end) for element_id, _, payload, end in elements if element_id == _SEGMENT]
    if not segments:
        raise ValueError("no Segment")
    for segment_start, segment_end in segments:
        for element_id, start, payload, end in _ebml_elements(out, segment_start, segment_end):
            if element_id == _TAGS:
                out[start:end] = _void(end - start)
            elif element_id == _SEEK_HEAD:  # its pointer to the Tags goes too
                for child_id, child, child_payload, child_end in _ebml_elements(out, payload, end):
                    if child_id == _SEEK and _seeks_tags(out, child_payload, child_end):
                        out[child:child_end] = _void(child_end - child)
    return bytes(out)


def _seeks_tags(data: bytearray, start: int, end: int) -> bool:
    for element_id, _, payload, element_end in _ebml_elements(data, start, end):
        if element_id == _SEEK_ID and int.from_bytes(data[payload:element_end], "big") == _TAGS:
            return True
    return False
