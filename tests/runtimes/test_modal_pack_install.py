"""The node pack installer a Modal or RunPod image runs at build time (runtimes/serverless/pack_install.py), run
here for real: real git on a local repository, a loopback Comfy Registry, real pip into a throwaway virtualenv,
offline."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.comfy_registry import LoopbackRegistry, loopback_registry
from tests.support.paths import REPO
from tests.support.tiny_pip import build_wheel, installed, make_venv, offline_pip_env

INSTALLER = REPO / "runtimes" / "serverless" / "pack_install.py"
NODE = "NODE_CLASS_MAPPINGS = {}\n"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A stand-in for the image's Python: a virtualenv, wheels to install offline, constraints pinning tinydep 1.0."""
    root = tmp_path_factory.mktemp("image")
    wheels = root / "wheels"
    for version in ("1.0", "2.0"):
        build_wheel(wheels, "tinydep", version)
    constraints = root / "constraints.txt"
    constraints.write_text("tinydep==1.0\n")
    return {"python": make_venv(root / "venv"), "wheels": wheels, "constraints": constraints}


@pytest.fixture
def registry() -> Iterator[LoopbackRegistry]:
    with loopback_registry() as running:
        yield running


def install(image: dict[str, Path], custom_nodes: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(image["python"]), str(INSTALLER), str(custom_nodes), str(image["constraints"]), *args],
                          capture_output=True, text=True, env=offline_pip_env(image["wheels"]), timeout=120)


def git_repo(path: Path, *commits: dict[str, str]) -> list[str]:
    """A repository at `path` with one commit per dict of files; returns the commit hashes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, check=True).stdout

    path.mkdir(parents=True)
    git("init", "-q", "-b", "main")
    hashes = []
    for files in commits:
        for name, text in files.items():
            (path / name).write_text(text)
        git("add", ".")
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
        hashes.append(git("rev-parse", "HEAD").strip())
    return hashes


def test_a_git_pack_lands_at_its_pinned_commit_with_its_requirements(image: dict[str, Path], tmp_path: Path) -> None:
    first, _later = git_repo(tmp_path / "repo", {"__init__.py": NODE + "PIN = 1\n", "requirements.txt": "tinydep\n"},
                             {"__init__.py": NODE + "PIN = 2\n"})
    custom_nodes = tmp_path / "comfy" / "custom_nodes"
    done = install(image, custom_nodes, "my_pack", "git", f"file://{tmp_path / 'repo'}", first)
    assert done.returncode == 0, done.stderr
    assert "PIN = 1" in (custom_nodes / "my_pack" / "__init__.py").read_text()  # the pin, not the branch's head
    assert installed(image["python"], "tinydep") == "1.0"  # the constraint chose among 1.0 and 2.0
    assert sorted(p.name for p in custom_nodes.parent.iterdir()) == ["custom_nodes"]  # no staging left


def test_a_commit_the_repository_lacks_fails_naming_it(image: dict[str, Path], tmp_path: Path) -> None:
    git_repo(tmp_path / "repo", {"__init__.py": NODE})
    missing = "0" * 40
    done = install(image, tmp_path / "custom_nodes", "my_pack", "git", f"file://{tmp_path / 'repo'}", missing)
    assert done.returncode == 1
    assert "git could not fetch" in done.stderr and missing in done.stderr
    assert not (tmp_path / "custom_nodes" / "my_pack").exists()


def test_a_registry_pack_is_fetched_at_its_version(image: dict[str, Path], registry: LoopbackRegistry,
                                                   tmp_path: Path) -> None:
    registry.add("tiny-pack", "1.2.0", {"__init__.py": NODE + "V = '1.2.0'\n", "nodes/extra.py": "X = 1\n"})
    registry.add("tiny-pack", "1.3.0", {"__init__.py": NODE + "V = '1.3.0'\n"})
    custom_nodes = tmp_path / "custom_nodes"
    done = install(image, custom_nodes, "tiny-pack", "registry", "tiny-pack", "1.2.0", registry.url)
    assert done.returncode == 0, done.stderr
    assert "V = '1.2.0'" in (custom_nodes / "tiny-pack" / "__init__.py").read_text()
    assert (custom_nodes / "tiny-pack" / "nodes" / "extra.py").is_file()
    assert "/nodes/tiny-pack/install?version=1.2.0" in registry.requests


def test_a_version_the_registry_lacks_fails_with_its_answer(image: dict[str, Path], registry: LoopbackRegistry,
                                                            tmp_path: Path) -> None:
    registry.add("tiny-pack", "1.2.0", {"__init__.py": NODE})
    done = install(image, tmp_path / "custom_nodes", "tiny-pack", "registry", "tiny-pack", "9.9.9", registry.url)
    assert done.returncode == 1
    assert "no pack 'tiny-pack' version 9.9.9 (HTTP 404: Not found)" in done.stderr
    assert not (tmp_path / "custom_nodes" / "tiny-pack").exists()


def test_a_banned_version_is_refused(image: dict[str, Path], registry: LoopbackRegistry, tmp_path: Path) -> None:
    registry.add("tiny-pack", "1.0.0", {"__init__.py": NODE})
    registry.statuses[("tiny-pack", "1.0.0")] = "NodeVersionStatusBanned"
    done = install(image, tmp_path / "custom_nodes", "tiny-pack", "registry", "tiny-pack", "1.0.0", registry.url)
    assert done.returncode == 1 and "'tiny-pack' version 1.0.0 is banned" in done.stderr
    assert "pin another" in done.stderr
    assert not (tmp_path / "custom_nodes" / "tiny-pack").exists()


def test_an_image_still_builds_with_a_version_deprecated_since_the_app_was_published(
        image: dict[str, Path], registry: LoopbackRegistry, tmp_path: Path) -> None:
    """Unlike a local install (refused: pick another now), a published app's image keeps building, and says so."""
    registry.add("tiny-pack", "1.0.0", {"__init__.py": NODE})
    registry.deprecated.add(("tiny-pack", "1.0.0"))
    done = install(image, tmp_path / "custom_nodes", "tiny-pack", "registry", "tiny-pack", "1.0.0", registry.url)
    assert done.returncode == 0, done.stderr
    assert "warning: tiny-pack@1.0.0 is deprecated" in done.stderr
    assert (tmp_path / "custom_nodes" / "tiny-pack" / "__init__.py").is_file()


def test_a_zip_member_outside_the_pack_is_refused(image: dict[str, Path], registry: LoopbackRegistry,
                                                  tmp_path: Path) -> None:
    registry.add("sly-pack", "1.0.0", {"__init__.py": NODE, "../escaped.py": "X = 1\n"})
    done = install(image, tmp_path / "comfy" / "custom_nodes", "sly-pack", "registry", "sly-pack", "1.0.0",
                   registry.url)
    assert done.returncode == 1 and "outside the pack" in done.stderr
    assert not list(tmp_path.rglob("escaped.py"))


def test_a_requirement_against_the_pins_fails_the_build_with_pips_reason(image: dict[str, Path],
                                                                          registry: LoopbackRegistry,
                                                                          tmp_path: Path) -> None:
    registry.add("greedy-pack", "1.0.0", {"__init__.py": NODE, "requirements.txt": "tinydep>=2\n"})
    done = install(image, tmp_path / "custom_nodes", "greedy-pack", "registry", "greedy-pack", "1.0.0", registry.url)
    assert done.returncode == 1
    assert "requirements of greedy-pack@1.0.0" in done.stderr
    assert "tinydep" in done.stderr and "conflict" in done.stderr.lower()  # pip's own explanation
    assert not (tmp_path / "custom_nodes" / "greedy-pack").exists()
    assert installed(image["python"], "tinydep") in (None, "1.0")
