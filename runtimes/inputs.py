"""A run's inputs, checked before any engine sees them: uploaded files by their kind (an image or mask: size,
type, pixels; a video or a sound: size and the container its bytes are; any other file: size; base64 decoded)
and values (dry-run through the code that will apply them). The app's API and forms, and a deployment's endpoint and
worker, check with these same functions."""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError

from publisher import AppSpec, InputValueError, InputValuesError, apply_values
from publisher.apply import FILE_TYPES
from publisher.quoting import quote
from runtimes.files import safe_filename
from runtimes.media import (
    AUDIO_FORMATS,
    UPLOAD_KINDS,
    VIDEO_FORMATS,
    describe_content,
    max_bytes_for,
    sniff_audio,
    sniff_video,
)

DEFAULT_MAX_UPLOAD_BYTES = 20 * 2**20
# Per image: a small file can decode into a huge one (an 8192 x 8192 1-bit PNG of 8 KB takes the engine to ~3 GB).
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096


@dataclass(frozen=True)
class ImageLimits:
    """What one uploaded image may be: a file size, and pixels (the engine's memory pays pixels, not bytes). A video
    or a sound may be larger: its cap derives from the same size (runtimes.media.BYTES_FACTOR)."""

    max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS

    def bytes_for(self, kind: str) -> int:
        return max_bytes_for(kind, self.max_bytes)


IMAGE_FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff"}


class InputProblems(ValueError):
    """Everything wrong with a request's inputs: [{input, message, allowed?, node?, node_input?}]."""

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p['input']}: {p['message']}" for p in problems))


def decode_image(name: str, value: str, limits: ImageLimits = ImageLimits()) -> tuple[str, bytes]:
    """A base64 (or data: URL) image -> (file name with the extension of its real format, bytes), checked."""
    return decode_upload(name, "image", value, limits)


def decode_upload(name: str, kind: str, value: str, limits: ImageLimits = ImageLimits()) -> tuple[str, bytes]:
    """A base64 (or data: URL) file for an input of `kind` -> (file name with the extension of what its bytes
    are, bytes), checked as check_upload does."""
    encoded = value.partition(",")[2] if value.startswith("data:") else value
    max_bytes = limits.bytes_for(kind)
    if len(encoded) > max_bytes * 4 // 3 + 4:
        raise InputProblems([{"input": name, "message": f"the {_noun(kind)} is larger than {_mib(max_bytes)}"}])
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InputProblems([{"input": name, "message": f"not base64 and not a file uploaded with this run: send the "
                                                        f"{_noun(kind)} itself as base64 (a data: URL works) or as a "
                                                        "multipart file part, or leave the input out to use the "
                                                        "app's own file"}]) from None
    return check_upload(name, kind, "upload", data, limits)


def check_upload(name: str, kind: str, filename: str, data: bytes, limits: ImageLimits = ImageLimits()
                 ) -> tuple[str, bytes]:
    """One uploaded file for an input of `kind` (image, mask, video, audio, file), checked by what its bytes are:
    (the name it is stored and handed to the engine under, with the extension of its real format, bytes)."""
    match kind:
        case "image" | "mask":
            return check_image(name, filename, data, limits)
        case "video":
            return _check_media(name, "video", filename, data, limits, sniff_video, VIDEO_FORMATS)
        case "audio":
            return _check_media(name, "audio", filename, data, limits, sniff_audio, AUDIO_FORMATS)
        case _:  # any bytes: the node that reads it knows what it wants; only the size is ours to check
            _check_size(name, "file", filename, data, limits)
            return safe_filename(filename, "upload"), data


def _check_media(name: str, kind: str, filename: str, data: bytes, limits: ImageLimits,
                 sniff: Callable[[bytes], str | None], formats: tuple[str, ...]) -> tuple[str, bytes]:
    _check_size(name, kind, filename, data, limits)
    found = sniff(data)
    if found is None:
        raise InputProblems([{"input": name, "message": f"{quote(filename)} is not a {kind} file this app accepts: "
                                                        f"its content is {describe_content(data)} (whatever its "
                                                        f"name says); send one of {', '.join(formats)}",
                              "allowed": list(formats)}])
    return f"{_stem(filename)}.{found}", data


def _check_size(name: str, kind: str, filename: str, data: bytes, limits: ImageLimits) -> None:
    max_bytes = limits.bytes_for(kind)
    if len(data) > max_bytes:
        raise InputProblems([{"input": name, "message": f"{quote(filename)} is larger than {_mib(max_bytes)}, the "
                                                        f"most a {_noun(kind)} may be here"}])


def _noun(kind: str) -> str:
    return {"audio": "sound", "mask": "mask image"}.get(kind, kind)


def _mib(size: int) -> str:
    return f"{size / 2**20:g} MiB"


def _stem(filename: str) -> str:
    """The caller's name for a file, as the engine's folder may hold it: its last segment, safe characters, room
    left for the extension of what it really is."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return safe_filename(base.rsplit(".", 1)[0] if "." in base else base, "upload")[:100]


def check_image(name: str, filename: str, data: bytes, limits: ImageLimits = ImageLimits()) -> tuple[str, bytes]:
    """Size and type are checked here, at the boundary: the engine only ever gets real images, named by what they
    are (not by what the caller called them)."""
    if len(data) > limits.max_bytes:
        raise InputProblems([{"input": name, "message": f"the file is larger than {_mib(limits.max_bytes)}"}])
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
            kind = image.format or ""
            pixels = image.width * image.height
    except Image.DecompressionBombError:  # Pillow's own limit, far above ours: certainly too many pixels
        raise _too_many_pixels(name, None, limits.max_pixels) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise InputProblems([{"input": name, "message": f"{quote(filename)} is not an image this app accepts: its "
                                                        f"content is {describe_content(data)}",
                              "allowed": sorted(IMAGE_FORMATS)}]) from None
    if pixels > limits.max_pixels:
        raise _too_many_pixels(name, pixels, limits.max_pixels)
    if kind not in IMAGE_FORMATS:
        raise InputProblems([{"input": name, "message": f"image format {kind} is not accepted",
                              "allowed": sorted(IMAGE_FORMATS)}])
    return f"{_stem(filename)}.{IMAGE_FORMATS[kind]}", data


def _too_many_pixels(name: str, pixels: int | None, max_pixels: int) -> InputProblems:
    side = int(max_pixels**0.5)
    has = f" ({pixels} pixels)" if pixels is not None else ""
    return InputProblems([{"input": name, "message": f"the image has too many pixels{has}: at most {max_pixels} "
                                                     f"are accepted (e.g. {side} x {side}); send a smaller image"}])


def is_image_input(spec: AppSpec, name: str) -> bool:
    item = spec.input(name)
    return item is not None and item.type in ("image", "mask")


def upload_kind(spec: AppSpec, name: str) -> str | None:
    """The kind of file an input takes (image, mask, video, audio, file), or None for an input of values."""
    item = spec.input(name)
    return item.type if item is not None and item.type in UPLOAD_KINDS else None


def own_files(spec: AppSpec, name: str) -> tuple[Any, ...]:
    """The file names a file input may name instead of an upload: the app's default and the workflow's own."""
    item = spec.input(name)
    if item is None:
        return ()
    own = (item.default, ((spec.workflow.get(item.node) or {}).get("inputs") or {}).get(item.input))
    return tuple(allowed for allowed in own if allowed is not None)


def split_json_inputs(spec: AppSpec, inputs: Mapping[str, Any], limits: ImageLimits = ImageLimits()
                      ) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]], list[dict[str, Any]]]:
    """JSON inputs -> (values, decoded uploads, problems): a non-empty string for a file input (image, mask,
    video, audio, file) is the file itself, base64 (a data: URL works), unless it names the app's own file."""
    values: dict[str, Any] = {}
    uploads: dict[str, tuple[str, bytes]] = {}
    problems: list[dict[str, Any]] = []
    for name, value in inputs.items():
        kind = upload_kind(spec, name)
        if kind is not None and isinstance(value, str) and value and value not in own_files(spec, name):
            try:
                uploads[name] = decode_upload(name, kind, value, limits)
            except InputProblems as exc:
                problems += exc.problems
        else:
            values[name] = value
    return values, uploads, problems


def problem_of(error: InputValueError) -> dict[str, Any]:
    problem: dict[str, Any] = {"input": error.input, "message": error.message}
    if error.node is not None:
        problem.update(node=error.node, node_input=error.node_input)
    if error.allowed is not None:
        problem["allowed"] = list(error.allowed) if isinstance(error.allowed, tuple) else error.allowed
    return problem


def check_values(spec: AppSpec, values: Mapping[str, Any], upload_names: Mapping[str, str],
                 problems: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """Dry-run the values (and the uploads' file names) through the code that will apply them, so errors come
    now, not on the engine. Raises InputProblems with these and any `problems` found before. Returns the values
    with the seeds drawn: a seed is drawn once, here, and recorded with the run, so a retry or a re-run after a
    restart produces the same image, and a failed run still says which seed it used."""
    foreign = foreign_file_problems(spec, values)
    found = [*problems, *foreign]
    applied = None
    try:
        applied = apply_values(spec.loaded_workflow, spec.inputs, {**values, **upload_names})
    except InputValuesError as exc:
        said = {problem["input"] for problem in found}  # one problem per input is enough
        found += [problem_of(e) for e in exc.errors if e.input not in said]
    if found or applied is None:
        raise InputProblems(found)
    seeds = {i.name: applied.values[i.name] for i in spec.inputs if i.type == "seed" and i.name in applied.values}
    return {**values, **seeds}


def foreign_file_problems(spec: AppSpec, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A file input (image, video, audio, file) takes an upload of this run, or else its own default or the
    workflow's file: any other name would hand the engine whatever it names in its input folder, another run's
    upload included. Every way in (JSON, multipart, the forms, a deployment's endpoint) comes through here, via
    check_values; `values` are the given values, the uploads apart."""
    problems = []
    for item in spec.inputs:
        value = values.get(item.name)
        if item.type not in FILE_TYPES or value is None:
            continue
        if any(value == allowed for allowed in own_files(spec, item.name)):
            continue
        how = f"send the {_noun(item.type)} itself (JSON: base64 or a data: URL; multipart: a file part)"
        text = quote(value) if isinstance(value, str) else f"a {type(value).__name__}"
        problems.append({"input": item.name, "node": item.node, "node_input": item.input,
                         "message": f"{text} is not a file uploaded with this run: {how}, or leave the input out to "
                                    "use the app's own file"})
    return problems
