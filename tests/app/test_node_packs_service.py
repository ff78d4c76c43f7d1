"""The node-pack service's choices without a server: the pins a ComfyUI of the user's own keeps (what its venv has
installed), an engine the app does not manage, and a bundled engine not installed yet."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.packs.service import ExternalEngine, NodePacks
from runtimes.engine.install import EngineInstall
from runtimes.engine.manager import EngineSettings
from runtimes.engine.node_packs import PackError
from runtimes.engine.process import free_port
from tests.support.node_packs import GOOD_INIT, git_pack


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{free_port()}/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", "")


def test_a_comfyui_of_the_users_own_keeps_what_its_venv_has(tmp_path: Path, engine_install: EngineInstall) -> None:
    packs = NodePacks(EngineSettings(data_dir=tmp_path / "data", comfyui_path=engine_install.comfyui_dir,
                                     comfyui_python=engine_install.python))
    old = git_pack(tmp_path / "src", "old_numpy", {"__init__.py": GOOD_INIT, "requirements.txt": "numpy<2\n"})
    with pytest.raises(PackError, match=r"pack old_numpy needs numpy<2; the engine is pinned to numpy 2\."):
        packs.install(old)
    fine = git_pack(tmp_path / "src", "fine", {"__init__.py": GOOD_INIT, "requirements.txt": "einops\n"})
    assert packs.install(fine).name == "fine"
    assert [p["name"] for p in packs.describe()] == ["fine"]


def test_an_engine_the_app_does_not_manage_is_refused(tmp_path: Path) -> None:
    packs = NodePacks(EngineSettings(data_dir=tmp_path, comfyui_url="http://127.0.0.1:8188"))
    with pytest.raises(ExternalEngine, match="--comfyui-url"):
        packs.install("comfyui-thing@1.0.0")
    with pytest.raises(ExternalEngine, match="--comfyui-url"):
        packs.remove("thing")


def test_a_bundled_engine_not_installed_yet_says_to_start_the_app_first(tmp_path: Path) -> None:
    packs = NodePacks(EngineSettings(data_dir=tmp_path / "data", engine_home=tmp_path / "no-engine"))
    with pytest.raises(PackError, match=r"not installed in .* yet: start the app once"):
        packs.install("comfyui-thing@1.0.0")
    assert not (tmp_path / "data" / "comfyui" / "custom_nodes").exists()
