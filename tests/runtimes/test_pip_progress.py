"""The engine install's pip step as a progress bar: real pip (this Python's 23.2.1, the engine venv's version) into a
throwaway virtualenv from tiny local wheels, offline; the console and the app's engine status showing it."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from app.engines import EngineStatus
from runtimes.engine.install import EngineInstallError, pip_install
from runtimes.engine.manager import EngineSettings
from runtimes.engine.pip_progress import BarMessage, ConsoleProgress
from tests.support.tiny_pip import build_wheel, installed, loopback_index, make_venv, offline_pip_env


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    build_wheel(folder, "tiny_app", "1.0", requires=["tiny_lib>=1", "tiny_util"])
    build_wheel(folder, "tiny_lib", "1.0", requires=["tiny_util"])
    build_wheel(folder, "tiny_util", "2.0")
    return folder


@pytest.fixture
def venv(tmp_path: Path, wheels: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh virtualenv, and pip pointed at the wheels only (this machine's pip config ignored)."""
    for key in [key for key in os.environ if key.startswith("PIP_")]:
        monkeypatch.delenv(key)
    for key, value in offline_pip_env(wheels).items():
        if key.startswith("PIP_"):
            monkeypatch.setenv(key, value)
    return make_venv(tmp_path / "venv")


def test_the_install_moves_a_bar_from_the_dry_runs_count_to_done(venv: Path, wheels: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    messages: list[str] = []
    with loopback_index(wheels) as index:  # as from PyPI: Collecting and Downloading lines
        monkeypatch.delenv("PIP_NO_INDEX")
        monkeypatch.delenv("PIP_FIND_LINKS")
        monkeypatch.setenv("PIP_INDEX_URL", index)
        pip_install(venv, ["tiny_app"], "install the tiny packages", messages.append)
    assert installed(venv, "tiny_app") == "1.0" and installed(venv, "tiny_util") == "2.0"
    bars = [m for m in messages if isinstance(m, BarMessage)]
    assert {bar.total for bar in bars} == {3 + 1}  # three packages, then the install itself
    assert [bar.done for bar in bars] == sorted(bar.done for bar in bars)
    assert sum(bar.step.startswith("Collecting ") for bar in bars) == 3
    assert any(bar.step.startswith("Installing 3 packages") and bar.done == 3 for bar in bars)
    assert bars[-1].done == bars[-1].total and bars[-1].step == "Installed 3 packages"
    assert str(bars[-1]) == "    [4/4] Installed 3 packages"  # the plain line a log or /api/engine shows
    assert any(bar.step.startswith("Downloading ") for bar in bars)


def test_local_wheels_count_as_they_are_processed(venv: Path) -> None:
    messages: list[str] = []
    pip_install(venv, ["tiny_app"], "install the tiny packages", messages.append)
    bars = [m for m in messages if isinstance(m, BarMessage)]
    assert [bar.step for bar in bars if bar.step.startswith("Processing ")] == [
        "Processing tiny_app-1.0-py3-none-any.whl", "Processing tiny_lib-1.0-py3-none-any.whl",
        "Processing tiny_util-2.0-py3-none-any.whl"]
    assert [bar.done for bar in bars] == [1, 2, 3, 3, 4]


def test_a_failed_install_keeps_pips_error_and_says_which_step(venv: Path) -> None:
    messages: list[str] = []
    with pytest.raises(EngineInstallError) as caught:
        pip_install(venv, ["tiny_app", "not_a_published_package"], "install the tiny packages", messages.append)
    error = str(caught.value)
    assert error.startswith("Could not install the tiny packages (exit 1)")
    assert "No matching distribution found for not_a_published_package" in error
    assert any("ERROR" in m and "not_a_published_package" in m for m in messages)
    assert installed(venv, "tiny_app") is None


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_redraws_one_bar_line_and_a_log_gets_plain_lines() -> None:
    updates = [BarMessage("Collecting a", 1, 4), BarMessage("Collecting b", 2, 4), BarMessage("Installed 3", 4, 4)]
    terminal = Terminal()
    show = ConsoleProgress(terminal)
    show("[3/3] installing")
    for update in updates:
        show(update)
    show("Engine installed.")
    first, bar, last = terminal.getvalue().split("\n")[:3]
    assert first == "[3/3] installing" and last == "Engine installed."
    assert bar.count("\r") == 3 and bar.rstrip("\x1b[K").endswith("100% Installed 3")  # one line, redrawn
    assert "[############------------]  50% Collecting b" in bar

    log = io.StringIO()
    show = ConsoleProgress(log)
    for update in updates:
        show(update)
    assert log.getvalue().splitlines() == ["    [1/4] Collecting a", "    [2/4] Collecting b", "    [4/4] Installed 3"]


def test_the_engine_status_keeps_one_moving_bar_line_among_its_steps(tmp_path: Path) -> None:
    status = EngineStatus(EngineSettings(data_dir=tmp_path, comfyui_url="http://127.0.0.1:9"), echo=False)
    report = status.manager.progress
    report("[3/3] installing torch and ComfyUI's requirements")
    for done in range(1, 5):
        report(BarMessage(f"Collecting p{done}", done, 5))
    report("Engine installed.")
    assert status.describe()["progress"] == ["[3/3] installing torch and ComfyUI's requirements",
                                             "    [4/5] Collecting p4", "Engine installed."]
