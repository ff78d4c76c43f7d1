"""Install one custom node pack at its pin into a custom_nodes/ folder, with its requirements constrained to the
engine's pins. Runs as a build step of a Modal or RunPod image (`python pack_install.py ...`), so: standard library
only, and it fails loudly (exit 1, the reason on stderr) so that the image build stops with the reason.

    python pack_install.py CUSTOM_NODES CONSTRAINTS FOLDER git URL COMMIT
    python pack_install.py CUSTOM_NODES CONSTRAINTS FOLDER registry ID VERSION [REGISTRY_URL]

The pack is staged beside custom_nodes/ and moved in only once its requirements are installed. Its fetchers
(fetch_git, fetch_registry) are also the local installer's (runtimes/engine/node_packs.py): one way to get a pack
at its pin, wherever it is installed.
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
from typing import BinaryIO

DEFAULT_REGISTRY = "https://api.comfy.org"
_FOLDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
TIMEOUT_S = 10  # per request: an unreachable registry fails in seconds, not minutes
GIT_TIMEOUT_S = 300
MAX_ZIP_BYTES = 500 * 2**20  # a pack's zip; far above real ones, a bound on a misbehaving server
MAX_UNZIPPED_BYTES = 2 * 2**30  # what it unpacks to (a zip bomb is small)
_WITHDRAWN = {"NodeVersionStatusBanned": "banned", "NodeVersionStatusDeleted": "deleted"}  # the registry's words


class PackInstallError(RuntimeError):
    """The pack could not be installed; the message says which step and why (git's or pip's own words)."""


def registry_url() -> str:
    """The Comfy Registry to ask: COMFY_REGISTRY_URL, else the public one."""
    return (os.environ.get("COMFY_REGISTRY_URL") or DEFAULT_REGISTRY).rstrip("/")


def fetch_git(url: str, commit: str, into: Path) -> None:
    """Exactly `commit` of the repository at `url` (a shallow fetch of that commit, not a branch), without its
    .git."""
    if not _COMMIT.match(commit):
        raise PackInstallError(f"commit {commit!r} is not a full 40-hex git commit")
    # Never wait for a password or a host-key prompt (a build, a server): fail with git's message instead.
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "",
           "GIT_SSH_COMMAND": os.environ.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes -o ConnectTimeout=10")}
    # A network that drops packets fails the fetch instead of hanging.
    config = ["-c", "advice.detachedHead=false", "-c", "http.lowSpeedLimit=1000", "-c", "http.lowSpeedTime=10"]
    into.mkdir(parents=True, exist_ok=True)
    # "--": a URL is never read as one of git's options.
    for step in (["init", "-q"], ["fetch", "-q", "--depth", "1", "--", url, commit], ["checkout", "-q", "FETCH_HEAD"]):
        try:
            done = subprocess.run(["git", *config, "-C", str(into), *step], capture_output=True, text=True, env=env,
                                  timeout=GIT_TIMEOUT_S)
        except FileNotFoundError:
            raise PackInstallError("git is not installed: install git to install a pack from a repository") from None
        except subprocess.TimeoutExpired:
            raise PackInstallError(f"git {step[0]} of {url} did not finish in {GIT_TIMEOUT_S} s") from None
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-10:])
            raise PackInstallError(f"git could not {step[0]} {url} at {commit} (exit {done.returncode}):\n{tail}")
    head = subprocess.run(["git", "-C", str(into), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    if head.strip() != commit:
        raise PackInstallError(f"{url}: checked out {head.strip()!r}, not the pinned commit {commit}")
    shutil.rmtree(into / ".git")


def fetch_registry(registry: str, node_id: str, version: str, into: Path, *, deprecated_ok: bool) -> None:
    """The registry's zip of `node_id` at `version` (GET /nodes/{id}/install?version=V gives its downloadUrl),
    unpacked into `into`. A banned or deleted version is refused; a deprecated one too unless `deprecated_ok` (an
    image of an app published earlier keeps building, with a warning)."""
    base = registry.rstrip("/")
    query = urllib.parse.urlencode({"version": version})
    url = f"{base}/nodes/{urllib.parse.quote(node_id, safe='')}/install?{query}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            answer = json.loads(response.read(2**20))
    except urllib.error.HTTPError as exc:
        raise PackInstallError(f"the Comfy Registry at {base} has no pack '{node_id}' version {version} "
                               f"(HTTP {exc.code}: {_message(exc)}); see the pack's versions on "
                               f"https://registry.comfy.org/nodes/{node_id}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise PackInstallError(f"the Comfy Registry at {base} cannot be reached ({exc}); check the connection, or "
                               "set COMFY_REGISTRY_URL to a registry you can reach") from None
    except ValueError:
        raise PackInstallError(f"the Comfy Registry at {base} did not answer JSON for '{node_id}' {version}: is it "
                               "a Comfy Registry?") from None
    download = answer.get("downloadUrl") if isinstance(answer, dict) else None
    if not isinstance(download, str) or urllib.parse.urlsplit(download).scheme not in ("http", "https"):
        raise PackInstallError(f"the Comfy Registry at {base} gave no usable download URL for '{node_id}' "
                               f"{version}")
    if answer.get("version", version) != version:
        raise PackInstallError(f"registry pack {node_id}: asked for {version}, the registry gave {answer['version']}")
    if (status := _WITHDRAWN.get(str(answer.get("status")))) is not None:
        raise PackInstallError(f"'{node_id}' version {version} is {status} in the Comfy Registry "
                               f"({answer.get('status_reason') or 'no reason given'}): pin another version")
    if answer.get("deprecated"):
        if not deprecated_ok:
            raise PackInstallError(f"'{node_id}' version {version} is deprecated in the Comfy Registry: pin another "
                                   "version")
        print(f"pack_install: warning: {node_id}@{version} is deprecated in the Comfy Registry", file=sys.stderr)
    with tempfile.TemporaryFile() as archive:
        _download(download, archive)
        _extract(archive, into)


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
            fetch_registry(args[2] if len(args) == 3 else DEFAULT_REGISTRY, args[0], args[1], pack,
                           deprecated_ok=True)
            name = f"{args[0]}@{args[1]}"
        else:
            raise PackInstallError(f"unknown pack kind or arguments: {kind} {' '.join(args)}\n{__doc__}")
        install_requirements(pack, constraints, name)
        pack.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _download(url: str, out: BinaryIO) -> None:
    """The pack's zip into `out`, bounded in size."""
    written = 0
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            while chunk := response.read(2**20):
                written += len(chunk)
                if written > MAX_ZIP_BYTES:
                    raise PackInstallError(f"the pack's zip {url} is over {MAX_ZIP_BYTES // 2**20} MiB: refused")
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        raise PackInstallError(f"the pack's zip {url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise PackInstallError(f"the pack's zip {url} could not be downloaded ({exc})") from None
    out.seek(0)


def _extract(archive: BinaryIO, into: Path) -> None:
    """Unzip, refusing members that would land outside the pack's folder, and zip bombs."""
    into.mkdir(parents=True, exist_ok=True)
    root = into.resolve()
    try:
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.namelist():
                if "\\" in member or not (root / member).resolve().is_relative_to(root):
                    raise PackInstallError(f"the pack's zip holds {member!r}, a path outside the pack's folder: "
                                           "refused")
            if (size := sum(info.file_size for info in zipped.infolist())) > MAX_UNZIPPED_BYTES:
                raise PackInstallError(f"the pack's zip unpacks to {size // 2**20} MiB, over "
                                       f"{MAX_UNZIPPED_BYTES // 2**20} MiB: refused")
            zipped.extractall(into)
    except zipfile.BadZipFile as exc:
        raise PackInstallError(f"the pack's download is not a zip file ({exc})") from None


def _message(error: urllib.error.HTTPError) -> str:
    """The registry's own words from an error answer ({"message": ...})."""
    body = error.read(4096).decode(errors="replace")
    try:
        data = json.loads(body)
        return str(data.get("message") or data.get("error") or data)[:200] if isinstance(data, dict) else body[:200]
    except ValueError:
        return body[:200] or str(error.reason)


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
