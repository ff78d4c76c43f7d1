"""Install one custom node pack at its pin into a custom_nodes/ folder, with its requirements constrained to the
engine's pins. Runs as a build step of a Modal image (`python pack_install.py ...`), so: standard library only,
and it fails loudly (exit 1, the reason on stderr) so that the image build stops with the reason.

    python pack_install.py CUSTOM_NODES CONSTRAINTS FOLDER git URL COMMIT
    python pack_install.py CUSTOM_NODES CONSTRAINTS FOLDER registry ID VERSION [REGISTRY_URL]

The pack is staged beside custom_nodes/ and moved in only once its requirements are installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

DEFAULT_REGISTRY = "https://api.comfy.org"
_FOLDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_TIMEOUT_S = 60
_WITHDRAWN = ("NodeVersionStatusBanned", "NodeVersionStatusDeleted")  # the registry's own words


class PackInstallError(RuntimeError):
    """The pack could not be installed; the message says which step and why (git's or pip's own words)."""


def fetch_git(url: str, commit: str, into: Path) -> None:
    """Exactly `commit` of the repository at `url` (a shallow fetch of that commit, not a branch)."""
    if not _COMMIT.match(commit):
        raise PackInstallError(f"commit {commit!r} is not a full 40-hex git commit")
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}  # never wait for a password in a build
    into.mkdir(parents=True)
    for args in (["init", "-q"], ["fetch", "-q", "--depth", "1", url, commit], ["checkout", "-q", "FETCH_HEAD"]):
        # A network that drops packets fails the fetch instead of hanging the build.
        _step(["git", "-c", "http.lowSpeedLimit=1000", "-c", "http.lowSpeedTime=30", "-C", str(into), *args],
              f"git {args[0]} of {url}", env=env)
    head = subprocess.run(["git", "-C", str(into), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    if head.strip() != commit:
        raise PackInstallError(f"{url}: checked out {head.strip()!r}, not the pinned commit {commit}")


def fetch_registry(registry: str, node_id: str, version: str, into: Path) -> None:
    """The registry's zip of `node_id` at `version` (GET /nodes/{id}/install?version=V gives its downloadUrl)."""
    query = urllib.parse.urlencode({"version": version})
    url = f"{registry.rstrip('/')}/nodes/{urllib.parse.quote(node_id, safe='')}/install?{query}"
    answer = json.loads(_get(url, f"registry pack {node_id}@{version}"))
    download = answer.get("downloadUrl") if isinstance(answer, dict) else None
    if not isinstance(download, str) or not download:
        raise PackInstallError(f"registry pack {node_id}@{version}: {url} gave no downloadUrl")
    if answer.get("version", version) != version:
        raise PackInstallError(f"registry pack {node_id}: asked for {version}, the registry gave {answer['version']}")
    status = str(answer.get("status", ""))
    if status in _WITHDRAWN:
        raise PackInstallError(f"registry pack {node_id}@{version} is {status.removeprefix('NodeVersionStatus')} on "
                               "the registry; pin another version")
    if answer.get("deprecated"):
        print(f"pack_install: warning: {node_id}@{version} is deprecated on the registry", file=sys.stderr)
    with tempfile.TemporaryFile() as archive:
        archive.write(_get(download, f"the zip of {node_id}@{version}"))
        _extract(archive, into, f"{node_id}@{version}")


def install_requirements(pack: Path, constraints: Path, name: str) -> None:
    """pip install -r requirements.txt under the engine's constraints: a pinned package never moves, and a pack
    that needs another version of one fails with pip's own explanation."""
    requirements = pack / "requirements.txt"
    if requirements.is_file():
        _step([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
               "-r", str(requirements), "-c", str(constraints)], f"install the requirements of {name}")


def install_pack(custom_nodes: Path, constraints: Path, folder: str, kind: str, args: list[str]) -> Path:
    if not _FOLDER.match(folder):
        raise PackInstallError(f"folder {folder!r} is not a plain folder name")
    target = custom_nodes / folder
    if target.exists():
        raise PackInstallError(f"{target} exists already: two packs with the same folder name")
    custom_nodes.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder}-", dir=custom_nodes.parent))
    try:
        pack = staging / folder
        if kind == "git" and len(args) == 2:
            fetch_git(args[0], args[1], pack)
            name = f"{args[0]}@{args[1]}"
        elif kind == "registry" and len(args) in (2, 3):
            fetch_registry(args[2] if len(args) == 3 else DEFAULT_REGISTRY, args[0], args[1], pack)
            name = f"{args[0]}@{args[1]}"
        else:
            raise PackInstallError(f"unknown pack kind or arguments: {kind} {' '.join(args)}\n{__doc__}")
        install_requirements(pack, constraints, name)
        pack.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _get(url: str, what: str) -> bytes:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise PackInstallError(f"{what}: {url!r} is not an http(s) address")
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")[:300]
        raise PackInstallError(f"{what}: {url} answered {exc.code}: {body}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise PackInstallError(f"{what}: cannot reach {url}: {exc}") from None


def _extract(archive: object, into: Path, name: str) -> None:
    """Unzip, refusing members that would land outside the pack's folder."""
    into.mkdir(parents=True)
    root = into.resolve()
    with zipfile.ZipFile(archive) as zipped:  # type: ignore[arg-type]
        for member in zipped.namelist():
            if not (root / member).resolve().is_relative_to(root):
                raise PackInstallError(f"{name}: the zip's member {member!r} would land outside the pack's folder")
        zipped.extractall(into)


def _step(cmd: list[str], what: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise PackInstallError(f"could not {what} (exit {done.returncode}):\n{tail}")


def main(argv: list[str]) -> int:
    if len(argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    custom_nodes, constraints, folder, kind, *rest = argv
    try:
        target = install_pack(Path(custom_nodes), Path(constraints), folder, kind, rest)
    except PackInstallError as exc:
        print(f"pack_install: {exc}", file=sys.stderr)
        return 1
    print(f"pack_install: installed {' '.join(rest)} into {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
