"""What an uploaded video or audio file really is, read from its first bytes (never from its name or the type the
caller declared), and how large each kind of upload may be. Standard library only: a deployment's endpoint and
worker ship it too."""

from __future__ import annotations

# --max-upload-mb caps an image (or mask, or any file); a video or a sound is larger for the same use, so its cap is
# derived from the same setting: one knob, and the request-body caps follow the largest (app/body_limit.py).
BYTES_FACTOR = {"video": 4, "audio": 2}
UPLOAD_KINDS = ("image", "mask", "video", "audio", "file")

# What each kind accepts, as its refusals list it. The engine's LoadVideo reads through PyAV (FFmpeg): animated
# WEBP is not among what it decodes (checked on the bundled engine), animated GIF is.
VIDEO_FORMATS = ("avi", "gif", "mkv", "mov", "mp4", "webm")
AUDIO_FORMATS = ("aac", "flac", "m4a", "mp3", "ogg", "opus", "wav")

_MP4_AUDIO_BRANDS = (b"M4A ", b"M4B ", b"M4P ", b"F4A ")


def max_bytes_for(kind: str, max_upload_bytes: int) -> int:
    return max_upload_bytes * BYTES_FACTOR.get(kind, 1)


def largest_upload_bytes(max_upload_bytes: int) -> int:
    """The most one upload of any kind may be: what a run's body must have room for."""
    return max(max_bytes_for(kind, max_upload_bytes) for kind in UPLOAD_KINDS)


def sniff_video(data: bytes) -> str | None:
    """The container of a video file as its extension, or None when these bytes are no video LoadVideo reads."""
    head = data[:64]
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _MP4_AUDIO_BRANDS:
            return None  # an audio-only MP4 (m4a): no frames to load
        return "mov" if brand == b"qt  " else "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska, or its WebM profile (the DocType says which)
        return "webm" if b"webm" in data[:256] else "mkv"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def sniff_audio(data: bytes) -> str | None:
    """The format of a sound file as its extension, or None when these bytes are no audio LoadAudio reads."""
    head = data[:64]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "opus" if b"OpusHead" in data[:128] else "ogg"
    if head[4:8] == b"ftyp":
        return "m4a"
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # an MPEG audio frame's sync word
        layer = (head[1] >> 1) & 0b11
        if layer == 0 and head[1] & 0xF6 == 0xF0:  # ADTS: AAC frames without a container
            return "aac"
        if layer != 0:
            return "mp3"
    return None


_IMAGE_MAGIC = ((b"\x89PNG", "png"), (b"\xff\xd8\xff", "jpeg"), (b"BM", "bmp"), (b"II*\x00", "tiff"),
                (b"MM\x00*", "tiff"))


def describe_content(data: bytes) -> str:
    """What these bytes are, as a refusal says it ("a wav sound", "an image (png)"), read from their start."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "an image (webp)"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "an animated or still gif"
    if (video := sniff_video(data)) is not None:
        return f"a {video} video"
    if (audio := sniff_audio(data)) is not None:
        return f"a {audio} sound"
    if (image := next((kind for magic, kind in _IMAGE_MAGIC if data.startswith(magic)), None)) is not None:
        return f"an image ({image})"
    if not data:
        return "empty"
    try:
        data[:512].decode("utf-8")
    except UnicodeDecodeError:
        return "of a kind not recognised"
    return "text"
