"""The Comfy Registry's public HTTP API, the one call a pinned install needs: which zip holds pack ID at VERSION.

    GET {COMFY_REGISTRY_URL or https://api.comfy.org}/nodes/{id}/install?version=X.Y.Z -> NodeVersion
    {"downloadUrl": ..., "deprecated": bool, "status": "NodeVersionStatusActive" | ...}

The zip holds the pack's files at its root (comfy-cli and ComfyUI-Manager extract it as is).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import httpx

DEFAULT_REGISTRY = "https://api.comfy.org"
TIMEOUT_S = 10.0  # connect/read: an unreachable registry fails in seconds, not minutes
MAX_ZIP_BYTES = 500 * 2**20  # a pack's zip; far above real ones, a bound on a misbehaving server
MAX_UNZIPPED_BYTES = 2 * 2**30  # what it unpacks to (a zip bomb is small)
_REFUSED_STATUSES = {"NodeVersionStatusBanned": "banned", "NodeVersionStatusDeleted": "deleted"}


class RegistryError(RuntimeError):
    """The registry refused or could not be reached; the message says which pack, where, and why."""


def registry_url() -> str:
    return (os.environ.get("COMFY_REGISTRY_URL") or DEFAULT_REGISTRY).rstrip("/")


def download_url(pack_id: str, version: str, base: str | None = None) -> str:
    """Where the zip of `pack_id` at `version` is; RegistryError for an unknown, banned or deprecated one."""
    base = (base or registry_url()).rstrip("/")
    url = f"{base}/nodes/{quote(pack_id, safe='')}/install"
    try:
        response = httpx.get(url, params={"version": version}, timeout=TIMEOUT_S, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise RegistryError(f"the Comfy Registry at {base} cannot be reached ({type(exc).__name__}: {exc}); "
                            "check the connection, or set COMFY_REGISTRY_URL to a registry you can reach") from exc
    if response.status_code != 200:
        raise RegistryError(f"the Comfy Registry at {base} has no pack '{pack_id}' version {version} "
                            f"(HTTP {response.status_code}: {_message(response)}); see the pack's versions on "
                            f"https://registry.comfy.org/nodes/{pack_id}")
    try:
        info = response.json()
        zip_url = info["downloadUrl"]
    except (ValueError, KeyError, TypeError):
        raise RegistryError(f"the Comfy Registry at {base} answered for '{pack_id}' {version} without a "
                            "downloadUrl: is COMFY_REGISTRY_URL a Comfy Registry?") from None
    if info.get("deprecated"):
        raise RegistryError(f"'{pack_id}' version {version} is deprecated in the Comfy Registry: pin another "
                            "version")
    if (status := _REFUSED_STATUSES.get(str(info.get("status")))) is not None:
        raise RegistryError(f"'{pack_id}' version {version} is {status} in the Comfy Registry "
                            f"({info.get('status_reason') or 'no reason given'}): it is not installed")
    if not isinstance(zip_url, str) or not zip_url.startswith(("https://", "http://")):
        raise RegistryError(f"the Comfy Registry gave no usable download URL for '{pack_id}' {version}")
    return zip_url


def download_zip(url: str, dest: Path) -> None:
    """Stream the pack's zip to `dest`, bounded in size."""
    written = 0
    try:
        with httpx.stream("GET", url, timeout=TIMEOUT_S, follow_redirects=True) as response, open(dest, "wb") as out:
            if response.status_code != 200:
                raise RegistryError(f"the pack's zip {url} answered HTTP {response.status_code}")
            for chunk in response.iter_bytes():
                written += len(chunk)
                if written > MAX_ZIP_BYTES:
                    raise RegistryError(f"the pack's zip {url} is over {MAX_ZIP_BYTES // 2**20} MiB: refused")
                out.write(chunk)
    except httpx.HTTPError as exc:
        raise RegistryError(f"the pack's zip {url} could not be downloaded ({type(exc).__name__}: {exc})") from exc


def extract_zip(archive: Path, dest: Path) -> None:
    """Extract into `dest`, refusing any member whose path would leave it (absolute, '..')."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.namelist():
                path = PurePosixPath(member)
                if path.is_absolute() or ".." in path.parts or "\\" in member:
                    raise RegistryError(f"the pack's zip holds {member!r}, a path outside its folder: refused")
            if (size := sum(info.file_size for info in zipped.infolist())) > MAX_UNZIPPED_BYTES:
                raise RegistryError(f"the pack's zip unpacks to {size // 2**20} MiB, over "
                                    f"{MAX_UNZIPPED_BYTES // 2**20} MiB: refused")
            zipped.extractall(dest)
    except zipfile.BadZipFile as exc:
        raise RegistryError(f"the pack's download is not a zip file ({exc})") from exc


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body.get("message") or body.get("error") or body)[:200]
    except ValueError:
        return response.text[:200] or response.reason_phrase
