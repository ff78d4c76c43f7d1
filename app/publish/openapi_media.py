"""How the typed per-app OpenAPI documents file inputs (image, mask, video, audio, file): in JSON a base64 string
(or a data: URL) with the formats each kind accepts, in multipart a binary file part. The formats are the ones
runtimes.inputs checks, by content."""

from __future__ import annotations

from typing import Any

from publisher import AppInput
from runtimes.media import AUDIO_FORMATS, UPLOAD_KINDS, VIDEO_FORMATS

IMAGE_FORMATS_TEXT = "png, jpeg, webp, gif, bmp, tiff"
_ACCEPTS = {
    "image": f"an image ({IMAGE_FORMATS_TEXT})",
    "mask": f"a mask image ({IMAGE_FORMATS_TEXT}): the node reads one channel of it (alpha: transparent is "
            "masked; red, green or blue: white is masked)",
    "video": f"a video ({', '.join(VIDEO_FORMATS)})",
    "audio": f"a sound ({', '.join(AUDIO_FORMATS)})",
    "file": "a file (any content)",
}
_MEDIA_TYPE = {"image": "image/*", "mask": "image/*", "video": "video/*", "audio": "audio/*",
               "file": "application/octet-stream"}


def is_file_input(item: AppInput) -> bool:
    return item.type in UPLOAD_KINDS


def file_description(item: AppInput) -> str:
    """What a JSON value of a file input is."""
    return (f" ({_ACCEPTS[item.type]}, read by its content: base64 or a data: URL in JSON; a file part in "
            "multipart; leave it out to use the app's own file)")


def json_schema_extra(item: AppInput) -> dict[str, Any]:
    return {"contentEncoding": "base64", "contentMediaType": _MEDIA_TYPE[item.type]}


def multipart_schema(inputs_schema: dict[str, Any], items: tuple[AppInput, ...]) -> dict[str, Any]:
    """A multipart body: one file part per file input, one field per other input (or them all as one JSON
    'inputs' field), and 'webhook'."""
    properties: dict[str, Any] = {}
    fields = inputs_schema.get("properties", {})
    for item in items:
        field = fields.get(item.name, {})
        if is_file_input(item):
            properties[item.name] = {"type": "string", "format": "binary", "title": field.get("title"),
                                     "description": f"{_ACCEPTS[item.type]}, read by its content"}
        else:
            properties[item.name] = field
    properties["inputs"] = {"type": "string", "description": "the inputs that are no files, as one JSON object "
                                                             "(instead of a field each)"}
    properties["webhook"] = {"type": "string", "description": "URL called with the result, signed (see docs)"}
    encoding = {item.name: {"contentType": _MEDIA_TYPE[item.type]} for item in items if is_file_input(item)}
    return {"schema": {"type": "object", "properties": properties}, "encoding": encoding}
