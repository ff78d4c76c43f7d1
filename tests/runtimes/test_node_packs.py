"""Installing node packs for real (git, the Comfy Registry's protocol on loopback, pip into the engine's own venv)
without an engine: what lands in custom_nodes/, what is refused, and that a refusal leaves nothing behind. The
engine loading them is tested over HTTP in tests/app/test_node_packs_api.py.

Requirements are only ones the engine's venv already has (einops): the shared venv never changes. pip's index is a
closed loopback port, so nothing here can reach the network."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtimes.engine.install import ENGINE_CONSTRAINTS, EngineInstall
from runtimes.engine.node_packs import MARKER, PackError, PackNotFound, install_pack, list_packs, remove_pack
from runtimes.engine.pack_health import pack_states
from runtimes.engine.process import free_port
from tests.support.comfy_registry import LoopbackRegistry, loopback_registry
from tests.support.node_packs import GOOD_INIT, git_pack

CLOSED = f"http://127.0.0.1:{free_port()}"  # nothing listens there


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", f"{CLOSED}/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("COMFY_REGISTRY_URL", CLOSED)


@pytest.fixture
def custom_nodes(tmp_path: Path) -> Path:
    return tmp_path / "comfyui" / "custom_nodes"


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackRegistry]:
    with loopback_registry() as served:
        monkeypatch.setenv("COMFY_REGISTRY_URL", served.url)
        yield served


def _install(pin: str, custom_nodes: Path, engine_install: EngineInstall) -> object:
    return install_pack(pin, custom_nodes, python=engine_install.python, constraints=ENGINE_CONSTRAINTS)


def _leftovers(custom_nodes: Path) -> list[str]:
    """What an install left beside and in custom_nodes/ (staging folders are hidden siblings)."""
    parent = custom_nodes.parent
    return sorted(str(p.relative_to(parent)) for p in parent.rglob("*")) if parent.exists() else []


def _pip_version(engine_install: EngineInstall, package: str) -> str:
    return subprocess.run([str(engine_install.python), "-c", f"import importlib.metadata as m; "
                           f"print(m.version({package!r}))"], capture_output=True, text=True, check=True).stdout


def test_a_git_pack_is_installed_at_its_commit_with_its_requirements(
        tmp_path: Path, custom_nodes: Path, engine_install: EngineInstall) -> None:
    pin = git_pack(tmp_path / "src", "invert_pack", {"__init__.py": GOOD_INIT, "requirements.txt": "einops>=0.6\n"})
    before = _pip_version(engine_install, "einops")
    installed = _install(pin, custom_nodes, engine_install)
    folder = custom_nodes / "invert_pack"
    assert (folder / "__init__.py").read_text() == GOOD_INIT
    assert not (folder / ".git").exists()
    assert json.loads((folder / MARKER).read_text())["pin"] == {"repo": pin.rsplit("@", 1)[0],
                                                               "commit": pin.rsplit("@", 1)[1]}
    assert installed.pin == pin  # type: ignore[attr-defined]
    assert _pip_version(engine_install, "einops") == before
    assert [(p.name, p.pin) for p in list_packs(custom_nodes)] == [("invert_pack", pin)]
    assert _leftovers(custom_nodes) == sorted(["custom_nodes", "custom_nodes/invert_pack",
                                               *(f"custom_nodes/invert_pack/{f}" for f in
                                                 ("__init__.py", "requirements.txt", MARKER))])


def test_a_later_commit_of_the_repository_is_not_what_is_installed(
        tmp_path: Path, custom_nodes: Path, engine_install: EngineInstall) -> None:
    pin = git_pack(tmp_path / "src", "moving", {"__init__.py": "NODE_CLASS_MAPPINGS = {}\n"})
    repo = tmp_path / "src" / "moving"
    (repo / "__init__.py").write_text("raise RuntimeError('the newer commit')\n")
    subprocess.run(["git", "-c", "user.email=t@e", "-c", "user.name=t", "-C", str(repo), "commit", "-qam", "newer"],
                   check=True)
    _install(pin, custom_nodes, engine_install)
    assert (custom_nodes / "moving" / "__init__.py").read_text() == "NODE_CLASS_MAPPINGS = {}\n"


def test_a_pack_whose_requirement_would_replace_torch_is_refused_and_leaves_nothing(
        tmp_path: Path, custom_nodes: Path, engine_install: EngineInstall) -> None:
    pin = git_pack(tmp_path / "src", "old_torch", {"__init__.py": GOOD_INIT,
                                                   "requirements.txt": "einops\ntorch==2.10.0\n"})
    with pytest.raises(PackError) as refused:
        _install(pin, custom_nodes, engine_install)
    assert "pack old_torch needs torch==2.10.0; the engine is pinned to torch 2.11.0" in str(refused.value)
    assert _leftovers(custom_nodes) == ["custom_nodes"]
    assert _pip_version(engine_install, "torch").startswith("2.11.0")


def test_a_requirement_pip_cannot_find_fails_with_pips_words_and_leaves_nothing(
        tmp_path: Path, custom_nodes: Path, engine_install: EngineInstall) -> None:
    pin = git_pack(tmp_path / "src", "unfindable", {"__init__.py": GOOD_INIT,
                                                    "requirements.txt": "no-such-package-for-a-test-pack==1.0\n"})
    with pytest.raises(PackError) as refused:
        _install(pin, custom_nodes, engine_install)
    message = str(refused.value)
    assert "pack unfindable: pip could not install its requirements" in message
    assert "no-such-package-for-a-test-pack" in message  # pip's own tail, quoted
    assert _leftovers(custom_nodes) == ["custom_nodes"]


def test_pip_option_lines_in_requirements_are_refused(tmp_path: Path, custom_nodes: Path,
                                                      engine_install: EngineInstall) -> None:
    pin = git_pack(tmp_path / "src", "indexed", {"__init__.py": GOOD_INIT,
                                                 "requirements.txt": "--extra-index-url https://x.example/simple\n"})
    with pytest.raises(PackError, match=r"requirements\.txt line 1 .* is a pip option"):
        _install(pin, custom_nodes, engine_install)
    assert _leftovers(custom_nodes) == ["custom_nodes"]


def test_an_unreachable_or_unknown_git_repository_says_gits_words(tmp_path: Path, custom_nodes: Path,
                                                                 engine_install: EngineInstall) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(PackError) as unreachable:
        _install(f"https://127.0.0.1:{free_port()}/owner/pack.git@{commit}", custom_nodes, engine_install)
    assert "git could not fetch" in str(unreachable.value) and "127.0.0.1" in str(unreachable.value)
    pin = git_pack(tmp_path / "src", "real", {"__init__.py": GOOD_INIT})
    with pytest.raises(PackError, match="git could not fetch"):
        _install(f"{pin.rsplit('@', 1)[0]}@{commit}", custom_nodes, engine_install)  # a commit it does not have
    assert _leftovers(custom_nodes) == ["custom_nodes"]


def test_a_registry_pack_is_downloaded_and_installed(registry: LoopbackRegistry, custom_nodes: Path,
                                                     engine_install: EngineInstall) -> None:
    registry.add("comfyui-invert", "1.2.3", {"__init__.py": GOOD_INIT, "requirements.txt": "einops\n",
                                             "web/invert.js": "// a web extension\n"})
    installed = _install("comfyui-invert@1.2.3", custom_nodes, engine_install)
    folder = custom_nodes / "comfyui-invert"
    assert (folder / "__init__.py").read_text() == GOOD_INIT and (folder / "web" / "invert.js").exists()
    assert json.loads((folder / MARKER).read_text())["pin"] == {"registry": "comfyui-invert", "version": "1.2.3"}
    assert installed.pin == "comfyui-invert@1.2.3"  # type: ignore[attr-defined]
    assert "/nodes/comfyui-invert/install?version=1.2.3" in registry.requests


@pytest.mark.parametrize(("status", "says"), [
    ("deprecated", "is deprecated in the Comfy Registry"),
    ("NodeVersionStatusBanned", "is banned in the Comfy Registry"),
])
def test_a_deprecated_or_banned_registry_version_is_refused(registry: LoopbackRegistry, custom_nodes: Path,
                                                           engine_install: EngineInstall, status: str,
                                                           says: str) -> None:
    registry.add("comfyui-old", "0.1.0", {"__init__.py": GOOD_INIT})
    if status == "deprecated":
        registry.deprecated.add(("comfyui-old", "0.1.0"))
    else:
        registry.statuses[("comfyui-old", "0.1.0")] = status
    with pytest.raises(PackError, match=says):
        _install("comfyui-old@0.1.0", custom_nodes, engine_install)
    assert _leftovers(custom_nodes) == ["custom_nodes"]


def test_an_unknown_registry_version_names_the_pack_and_the_answer(registry: LoopbackRegistry, custom_nodes: Path,
                                                                  engine_install: EngineInstall) -> None:
    registry.add("comfyui-invert", "1.2.3", {"__init__.py": GOOD_INIT})
    with pytest.raises(PackError) as refused:
        _install("comfyui-invert@9.9.9", custom_nodes, engine_install)
    assert "has no pack 'comfyui-invert' version 9.9.9 (HTTP 404: Not found)" in str(refused.value)


def test_a_zip_reaching_outside_its_folder_is_refused(registry: LoopbackRegistry, custom_nodes: Path,
                                                      engine_install: EngineInstall) -> None:
    registry.add("comfyui-evil", "1.0.0", {"__init__.py": GOOD_INIT, "../../escaped.py": "x = 1\n"})
    with pytest.raises(PackError, match="a path outside the pack's folder"):
        _install("comfyui-evil@1.0.0", custom_nodes, engine_install)
    assert _leftovers(custom_nodes) == ["custom_nodes"]


def test_an_unreachable_registry_says_so(custom_nodes: Path, engine_install: EngineInstall) -> None:
    with pytest.raises(PackError, match=f"the Comfy Registry at {CLOSED} cannot be reached"):
        _install("comfyui-invert@1.2.3", custom_nodes, engine_install)
    assert _leftovers(custom_nodes) == ["custom_nodes"]


def test_an_installed_pack_is_not_replaced_and_is_removed_by_name(tmp_path: Path, custom_nodes: Path,
                                                                  engine_install: EngineInstall) -> None:
    pin = git_pack(tmp_path / "src", "twice", {"__init__.py": GOOD_INIT})
    _install(pin, custom_nodes, engine_install)
    with pytest.raises(PackError, match=r"custom_nodes/twice exists already .* \(`nodes remove twice`\)"):
        _install(pin, custom_nodes, engine_install)
    with pytest.raises(PackError, match=r"no pack 'other' .* \(installed: twice\)"):
        remove_pack("other", custom_nodes)
    with pytest.raises(PackNotFound, match="not usable as a pack's folder name"):
        remove_pack("..", custom_nodes)
    (custom_nodes / "__pycache__").mkdir()  # what nodes list does not show, nodes remove does not take
    with pytest.raises(PackNotFound, match=r"no pack '__pycache__'"):
        remove_pack("__pycache__", custom_nodes)
    (custom_nodes / "__pycache__").rmdir()
    remove_pack("twice", custom_nodes)
    assert list_packs(custom_nodes) == [] and _leftovers(custom_nodes) == ["custom_nodes"]


def test_a_folder_put_there_by_hand_is_listed_without_a_pin(custom_nodes: Path) -> None:
    (custom_nodes / "by_hand").mkdir(parents=True)
    (custom_nodes / "comfy_publisher").mkdir()  # the app's own editor extension is not a pack
    assert [(p.name, p.pin) for p in list_packs(custom_nodes)] == [("by_hand", None)]


def test_a_packs_state_comes_from_the_engines_log_and_its_nodes() -> None:
    log = "\n".join([
        "=== engine start 2026-11-30 cpu port 1: python main.py",
        "Traceback (most recent call last):",
        '  File "/d/custom_nodes/broken/__init__.py", line 1, in <module>',
        "ModuleNotFoundError: No module named 'nope'",
        "",
        "Cannot import /d/custom_nodes/broken module for custom nodes: No module named 'nope'",
        "Import times for custom nodes:",
        "   0.0 seconds: /d/custom_nodes/good",
        "   0.0 seconds (IMPORT FAILED): /d/custom_nodes/broken",
        "   0.0 seconds: /d/custom_nodes/broken_not",
    ])
    states = pack_states(["good", "broken", "later"], log,
                         {"PackInvert": {"python_module": "custom_nodes.good"}, "KSampler": {"python_module": "nodes"}})
    assert (states["good"].state, states["good"].node_types) == ("loaded", ("PackInvert",))
    assert states["broken"].state == "failed"
    assert states["broken"].log[0] == "Traceback (most recent call last):"
    assert states["broken"].log[-1].endswith("(IMPORT FAILED): /d/custom_nodes/broken")
    assert not any("broken_not" in line for line in states["broken"].log)
    assert states["later"].state == "not loaded"
