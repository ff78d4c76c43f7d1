"""Small media files made at test time: a WAV with the standard library, an animated GIF with Pillow, and an MP4
with PyAV run in the engine's own virtualenv (the app's has no PyAV; the engine's reads videos with it)."""

from __future__ import annotations

import io
import json
import math
import struct
import subprocess
import wave
from pathlib import Path
from typing import Any

from PIL import Image

# Frame colours of the test videos: distinct enough that a lossy codec keeps them apart.
FRAME_COLOURS = ((220, 30, 30), (30, 200, 40), (40, 60, 220))


def wav_bytes(seconds: float = 0.25, rate: int = 8000, hertz: float = 440.0) -> bytes:
    """A mono 16-bit sine tone."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        samples = (int(12000 * math.sin(2 * math.pi * hertz * i / rate)) for i in range(int(seconds * rate)))
        wav.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return out.getvalue()


def gif_bytes(size: int = 32) -> bytes:
    frames = [Image.new("RGB", (size, size), colour) for colour in FRAME_COLOURS]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out.getvalue()


_MP4_SCRIPT = """
import sys, av, numpy as np
colours = {colours!r}
size = {size}
with av.open(sys.argv[1], "w", format="mp4") as out:
    stream = out.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=10)
    stream.width = stream.height = size
    stream.pix_fmt = "yuv420p"
    for colour in colours:
        for _ in range({repeat}):
            frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), colour, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
"""


def mp4_bytes(engine_python: Path, folder: Path, size: int = 32, repeat: int = 2) -> bytes:
    """An MP4 of FRAME_COLOURS (each `repeat` frames), encoded by the engine's PyAV."""
    path = folder / "clip.mp4"
    script = _MP4_SCRIPT.format(colours=FRAME_COLOURS, size=size, repeat=repeat)
    subprocess.run([str(engine_python), "-c", script, str(path)], check=True, timeout=120, capture_output=True)
    return path.read_bytes()


# Audio and video files tagged as ComfyUI's save nodes tag them (comfy_extras/nodes_audio.py, nodes_video.py and
# comfy_api's VideoFromComponents in ComfyUI 0.3.75): the same PyAV calls, container metadata `prompt` and `workflow`
# as JSON text, MP4 written with movflags=use_metadata_tags.
_TAGGED_SCRIPT = """
import json, sys, av, numpy as np
from fractions import Fraction
folder, tags = sys.argv[1], json.loads(sys.argv[2])
def audio(name, fmt, codec, rate, **options):
    with av.open(folder + "/" + name, "w", format=fmt) as out:
        out.metadata.update(tags)
        stream = out.add_stream(codec, rate=rate, **options)
        stream.layout = "mono"
        t = np.arange(rate // 4) / rate  # a quarter second of 440 Hz
        frame = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :],
                                           format="flt", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
def video(name, fmt, codec, options):
    with av.open(folder + "/" + name, "w", format=fmt, options=options) as out:
        out.metadata.update(tags)
        stream = out.add_stream(codec, rate=10)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for colour in {colours!r}:
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), colour, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
audio("sound.flac", "flac", "flac", 44100)
audio("sound.mp3", "mp3", "libmp3lame", 44100)
audio("sound.opus", "opus", "libopus", 48000)
video("clip.mp4", "mp4", "libx264", {{"movflags": "use_metadata_tags"}})
video("clip.webm", "webm", "libvpx-vp9", {{}})
"""

TAGGED_NAMES = ("sound.flac", "sound.mp3", "sound.opus", "clip.mp4", "clip.webm")

# What a player finds in a file: every metadata key (container and streams) and a digest of the decoded media.
_REPORT_SCRIPT = """
import hashlib, json, sys, av
report = {}
for path in sys.argv[1:]:
    with av.open(path) as media:
        keys = set(media.metadata)
        digest = hashlib.sha256()
        for stream in media.streams:
            keys |= set(stream.metadata)
        for frame in media.decode(*media.streams):
            digest.update(frame.to_ndarray().tobytes())
        report[path] = {"keys": sorted(keys), "decoded": digest.hexdigest()}
print(json.dumps(report))
"""


def tagged_media(engine_python: Path, folder: Path, tags: dict[str, str]) -> dict[str, bytes]:
    """TAGGED_NAMES -> the bytes of each file, made by the engine's PyAV with `tags` as their metadata."""
    script = _TAGGED_SCRIPT.format(colours=FRAME_COLOURS)
    subprocess.run([str(engine_python), "-c", script, str(folder), json.dumps(tags)], check=True, timeout=120,
                   capture_output=True)
    return {name: (folder / name).read_bytes() for name in TAGGED_NAMES}


def media_report(engine_python: Path, paths: list[Path]) -> dict[str, dict[str, Any]]:
    """Path -> {"keys": the metadata keys PyAV reads, "decoded": sha256 of every decoded frame}."""
    done = subprocess.run([str(engine_python), "-c", _REPORT_SCRIPT, *map(str, paths)], check=True, timeout=120,
                          capture_output=True, text=True)
    return dict(json.loads(done.stdout))
