"""Small media files made at test time: a WAV with the standard library, an animated GIF with Pillow, and an MP4
with PyAV run in the engine's own virtualenv (the app's has no PyAV; the engine's reads videos with it)."""

from __future__ import annotations

import io
import math
import struct
import subprocess
import wave
from pathlib import Path

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
