"""Real pip, offline: tiny wheels built with zipfile, a throwaway virtualenv, and an environment that ignores this
machine's pip configuration (its find-links, extra indexes and global constraints)."""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def build_wheel(directory: Path, name: str, version: str, requires: Iterable[str] = ()) -> Path:
    """A pure-Python wheel `name`==`version` holding one module `name`, depending on `requires`."""
    directory.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"VERSION = {version!r}\n",
        f"{dist}/METADATA": "Metadata-Version: 2.1\n"
                            f"Name: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{path},sha256={_digest(text.encode())},{len(text.encode())}" for path, text in files.items()]
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def make_venv(directory: Path) -> Path:
    """A fresh virtualenv (with the pip of this Python); returns its python."""
    subprocess.run([sys.executable, "-m", "venv", str(directory)], check=True, capture_output=True)
    return directory / "bin" / "python"


def offline_pip_env(find_links: Path) -> dict[str, str]:
    """This process's environment with pip pointed at `find_links` only and this machine's pip config ignored."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(find_links),
               PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_CACHE_DIR="1")
    return env


@contextmanager
def loopback_index(wheels: Path) -> Iterator[str]:
    """A PEP 503 package index over HTTP for the wheels in `wheels` (pip then speaks to it as to PyPI: it prints
    Collecting and Downloading lines); yields its /simple/ URL."""
    for wheel in wheels.glob("*.whl"):
        page = wheels / "simple" / wheel.name.split("-")[0].lower().replace("_", "-")
        page.mkdir(parents=True, exist_ok=True)
        (page / "index.html").write_text(f'<a href="../../{wheel.name}">{wheel.name}</a>\n')
    handler = functools.partial(_QuietFiles, directory=str(wheels))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def installed(python: Path, name: str) -> str | None:
    """The version of `name` in the virtualenv of `python`, or None."""
    done = subprocess.run([str(python), "-c", f"import importlib.metadata as m; print(m.version({name!r}))"],
                          capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
