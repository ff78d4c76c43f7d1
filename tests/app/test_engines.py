"""The engines' start-up as the web app follows it: started before the web app exists, each engine handed over
as soon as it answers, however late the taker attaches."""

from __future__ import annotations

from pathlib import Path

from app.engines import EngineStatus
from runtimes.engine.manager import Engine, EngineSettings


def test_engines_ready_before_the_pool_attaches_are_handed_over_when_it_does(engine_url: str, tmp_path: Path) -> None:
    status = EngineStatus(EngineSettings(data_dir=tmp_path, comfyui_url=engine_url), echo=False)
    status.start_in_background()
    assert status.wait(30) == "ready" and status.is_ready() and status.problem() is None
    taken: list[Engine] = []
    status.attach(taken.append)
    assert [engine.url for engine in taken] == [engine_url]


def test_an_engine_that_cannot_start_is_the_reason_runs_are_refused(tmp_path: Path) -> None:
    status = EngineStatus(EngineSettings(data_dir=tmp_path, comfyui_url="http://127.0.0.1:9"), echo=False)
    status.start_in_background()
    assert status.wait(30) == "failed"
    assert status.problem() is not None and "127.0.0.1:9" in status.problem()
    taken: list[Engine] = []
    status.attach(taken.append)
    assert taken == []
