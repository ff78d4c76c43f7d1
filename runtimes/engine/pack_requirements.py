"""A node pack's requirements.txt, installed into the engine's own virtualenv without ever moving a pinned
package: each requirement is checked against the engine's pins first (a clear refusal naming both versions), then
pip installs with the pins as constraints (-c), so nothing it pulls in can replace torch or the engine's packages."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

PIP_TIMEOUT_S = 1800  # the whole pip run; a slow network is bounded per request by --timeout
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


class RequirementsError(RuntimeError):
    """A pack's requirements cannot be installed; the message names the pack, the requirement and why."""


def read_pins(constraints: Path) -> dict[str, str]:
    """{canonical name: version} of every `name==version` line of a constraints file."""
    pins = {}
    for line in constraints.read_text().splitlines():
        if match := _PIN.match(line.strip()):
            pins[canonicalize_name(match[1])] = match[2]
    return pins


def read_requirements(path: Path, pack: str) -> list[Requirement]:
    """The requirements of a requirements.txt; option lines (-r, -e, --index-url...) are refused: they would send
    pip elsewhere than the engine's indexes, or past the constraints."""
    requirements = []
    for number, raw in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise RequirementsError(f"pack {pack}: requirements.txt line {number} {line[:80]!r} is a pip option; "
                                    "only plain requirements (name, name==1.2, name>=1.0) are installed")
        try:
            requirements.append(Requirement(line))
        except InvalidRequirement as exc:
            raise RequirementsError(f"pack {pack}: requirements.txt line {number} {line[:80]!r} is not a "
                                    f"requirement ({exc})") from None
    return requirements


def conflicts(requirements: list[Requirement], pins: dict[str, str], pack: str) -> list[str]:
    """One sentence per requirement that the engine's pinned version does not satisfy."""
    found = []
    for requirement in requirements:
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None or requirement.url:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue  # not for this platform (judged here; pip judges again in the engine's venv)
        if not requirement.specifier.contains(pinned, prereleases=True):
            found.append(f"pack {pack} needs {requirement}; the engine is pinned to {requirement.name} {pinned}")
    return found


def pip_install(python: Path, requirements_txt: Path, constraints: Path, pack: str) -> str:
    """pip install -r requirements_txt -c constraints into the engine's venv; returns pip's output, or raises
    RequirementsError with its tail."""
    command = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
               "--progress-bar", "off", "--retries", "0", "--timeout", "10",  # offline: an error in seconds
               "-c", str(constraints), "-r", str(requirements_txt)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RequirementsError(f"pack {pack}: pip did not finish in {PIP_TIMEOUT_S} s") from None
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        tail = "\n".join(output.splitlines()[-15:])
        raise RequirementsError(f"pack {pack}: pip could not install its requirements (exit {done.returncode}):"
                                f"\n{tail}")
    return output


def freeze_constraints(python: Path, dest: Path) -> Path:
    """A constraints file of what a venv has installed now (for a ComfyUI of the user's own, whose pins are what
    it has): nothing installed may move."""
    done = subprocess.run([str(python), "-m", "pip", "freeze", "--all", "--disable-pip-version-check"],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RequirementsError(f"could not list the packages of {python}: {done.stderr.strip()[-500:]}")
    lines = [line for line in done.stdout.splitlines()
             if _PIN.match(line) and canonicalize_name(line.split("==")[0]) not in ("pip", "setuptools")]
    dest.write_text("\n".join(lines) + "\n")
    return dest
