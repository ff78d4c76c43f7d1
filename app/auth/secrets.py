"""The server's master key, and secrets derived from it.

One random key lives in ``<data_dir>/secret.key`` (mode 0600). Every other secret (for example the per-app
webhook signing secret) is derived from it with HMAC-SHA256, so no such secret is ever written to disk or to the
database, yet each one is stable across restarts and can be shown to the app's owner on request::

    master = load_or_create_master_key(data_dir)
    secret = webhook_secret(master, "my-app")  # == derive_secret(master, "webhook:my-app")

Rotating the master key (deleting the file) rotates every derived secret at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import stat
from pathlib import Path

__all__ = [
    "KEY_FILE_NAME",
    "KEY_LENGTH",
    "MasterKeyError",
    "derive_secret",
    "load_or_create_master_key",
    "webhook_secret",
]

KEY_FILE_NAME = "secret.key"
KEY_LENGTH = 32


class MasterKeyError(RuntimeError):
    """The key file exists but cannot be used safely (too open, wrong size, not a regular file)."""


def load_or_create_master_key(data_dir: Path) -> bytes:
    """Return the 32-byte master key in ``data_dir/secret.key``, creating it (mode 0600) on first use.

    Refuses a key file that group or others can access: a leaked master key leaks every derived secret.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / KEY_FILE_NAME
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    return _create_key(path)


def derive_secret(master: bytes, purpose: str) -> str:
    """HMAC-SHA256(master, purpose) as 64 hex characters; the same inputs always give the same secret.

    Hex (rather than base64) so receivers can paste it anywhere and use ``secret.encode()`` as the HMAC key.
    """
    if len(master) < 16:  # guards against passing a str-derived or truncated key by mistake
        raise ValueError(f"master key is too short ({len(master)} bytes); expected {KEY_LENGTH}")
    if not purpose:
        raise ValueError("purpose must be a non-empty string, e.g. 'webhook:<app slug>'")
    return hmac.new(master, purpose.encode("utf-8"), hashlib.sha256).hexdigest()


def webhook_secret(master: bytes, app_slug: str) -> str:
    """The signing secret for one app's webhooks (``derive_secret(master, f"webhook:{app_slug}")``)."""
    return derive_secret(master, f"webhook:{app_slug}")


def _read_key(path: Path) -> bytes:
    # O_NOFOLLOW-free on purpose: a symlinked key (e.g. to a secrets mount) is fine, its target is checked.
    with open(path, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise MasterKeyError(f"{path} is not a regular file; remove it and restart to create a new key")
        if os.name != "nt" and info.st_mode & 0o077:  # POSIX modes mean nothing on Windows
            raise MasterKeyError(
                f"{path} is accessible by group/others (mode {stat.S_IMODE(info.st_mode):04o}); the master key "
                f"must be private to its owner. Fix it with: chmod 600 {path}"
            )
        key = handle.read(KEY_LENGTH + 1)
    if len(key) != KEY_LENGTH:
        raise MasterKeyError(
            f"{path} holds {len(key)} bytes, expected {KEY_LENGTH}; restore the original file, or delete it to "
            "create a new key (this changes every derived secret, e.g. all webhook secrets)"
        )
    return key


def _create_key(path: Path) -> bytes:
    key = os.urandom(KEY_LENGTH)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    # Created 0600 from the start (never briefly world-readable), fully written before it gets its real name.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            # link() never replaces an existing file: if another process won the race, use its key instead.
            os.link(tmp, path)
        except FileExistsError:
            return _read_key(path)
        except OSError:
            # Filesystems without hard links: rename is still atomic, only the no-clobber guarantee is lost.
            if path.exists():
                return _read_key(path)
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return key


def _fsync_dir(directory: Path) -> None:
    # Makes the new directory entry durable; not possible (nor needed) on every platform.
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
