"""The content type of an output file, by its extension: mapped explicitly for what a workflow writes (images,
video, audio, text, 3D files), since `mimetypes` reads the platform's own tables and misses some of them (.ply
everywhere, .webp, .opus or .glb on older systems). Standard library only: a deployment's worker ships it."""

from __future__ import annotations

import mimetypes

OCTET_STREAM = "application/octet-stream"

MIME_BY_EXTENSION = {
    # images
    "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif",
    "bmp": "image/bmp", "tif": "image/tiff", "tiff": "image/tiff", "svg": "image/svg+xml", "avif": "image/avif",
    # video
    "mp4": "video/mp4", "webm": "video/webm", "mkv": "video/x-matroska", "mov": "video/quicktime",
    "avi": "video/x-msvideo",
    # audio (an .opus file is Ogg Opus: browsers play it as audio/ogg)
    "wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "ogg": "audio/ogg", "opus": "audio/ogg",
    "m4a": "audio/mp4", "aac": "audio/aac",
    # text
    "txt": "text/plain", "json": "application/json", "csv": "text/csv", "md": "text/markdown",
    # 3D
    "glb": "model/gltf-binary", "gltf": "model/gltf+json", "obj": "model/obj", "stl": "model/stl",
    "ply": "model/ply", "usdz": "model/vnd.usdz+zip", "3mf": "model/3mf",
}


def mime_of(filename: str) -> str:
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return MIME_BY_EXTENSION.get(extension) or mimetypes.guess_type(filename)[0] or OCTET_STREAM
