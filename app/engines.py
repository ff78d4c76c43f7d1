"""The engines as the web app sees them: started in the background as early as possible (launch.py starts them
before it imports the web app, so the engine's own start-up runs beside the app's), their state and start-up log
for pages and probes. Light to import on purpose: nothing here may delay that start."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from runtimes.engine.errors import EngineError
from runtimes.engine.install import EngineInstallError
from runtimes.engine.manager import Engine, EngineManager, EngineSettings
from runtimes.engine.pip_progress import BarMessage, ConsoleProgress

State = Literal["starting", "ready", "failed", "stopped"]


class EngineStatus:
    """Owns the engine manager's start-up: the web server answers at once while engines start."""

    def __init__(self, settings: EngineSettings, echo: bool = True) -> None:
        # The manager reports install and start-up steps here, for pages and probes.
        self.manager = EngineManager(settings, progress=self._record)
        self.state: State = "starting"
        self.error: str | None = None
        self.progress: deque[str] = deque(maxlen=200)
        self._echo = ConsoleProgress() if echo else None
        self._thread: threading.Thread | None = None
        self.started_at = time.time()
        self._lock = threading.Lock()  # the start-up thread hands engines over while a taker attaches
        self._ready: list[Engine] = []
        self._on_ready: Callable[[Engine], None] | None = None

    def _record(self, message: str) -> None:
        # A bar's update replaces the previous one: the record keeps one moving line, not a line per package.
        if isinstance(message, BarMessage) and self.progress and isinstance(self.progress[-1], BarMessage):
            self.progress[-1] = message
        else:
            self.progress.append(message)
        if self._echo is not None:
            self._echo(message)

    # --- start-up ------------------------------------------------------------------------------------

    def start_in_background(self) -> None:
        self._thread = threading.Thread(target=self._start, name="engine-start", daemon=True)
        self._thread.start()

    def _start(self) -> None:
        try:
            self.manager.start(on_ready=self._engine_ready)
        except Exception as exc:  # whatever stops the engines, the app must say so rather than wait forever
            message = str(exc) if isinstance(exc, EngineError | EngineInstallError) else f"{type(exc).__name__}: {exc}"
            self.state, self.error = "failed", message
            self._record(f"Engine start failed: {message}")

    def _engine_ready(self, engine: Engine) -> None:
        with self._lock:
            self.state = "ready"
            self._ready.append(engine)
            take = self._on_ready
        if take is not None:
            take(engine)

    def attach(self, on_ready: Callable[[Engine], None]) -> None:
        """Hand every engine to `on_ready` as soon as it answers: those ready already now, the others from their
        start-up thread."""
        with self._lock:
            self._on_ready = on_ready
            ready = list(self._ready)
        for engine in ready:
            on_ready(engine)

    def wait(self, timeout: float | None = None) -> State:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.state

    def stop(self) -> None:
        self.manager.stop()
        self.state = "stopped"

    # --- state ---------------------------------------------------------------------------------------

    def engines(self) -> list[Engine]:
        return list(self.manager.engines)

    def is_ready(self) -> bool:
        return self.state == "ready" and any(engine.is_ready() for engine in self.manager.engines)

    def ready_url(self) -> str | None:
        """A ready engine's URL, or None while none is."""
        return next((engine.url for engine in self.manager.engines if engine.is_ready()), None)

    def models_dir(self) -> Path | None:
        """The models folder the engines read: the managed engines', or the one given for an engine given by URL
        (--models-dir); None when unknown."""
        return self.manager.settings.models_dir

    def problem(self) -> str | None:
        """Why no engine can run anything (they failed to start), or None."""
        return self.error if self.state == "failed" else None

    def describe(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "ready": self.is_ready(),
            "error": self.error,
            "progress": [str(message) for message in list(self.progress)[-20:]],
            "engines": [
                {
                    "name": engine.name,
                    "url": engine.url if engine.started else None,
                    "device": engine.device.label,
                    "device_name": engine.device.name,
                    "managed": engine.managed,
                    "pid": engine.process.pid if engine.process else None,
                    "restarts": len(engine.restarts),
                    "failed": engine.failed,
                }
                for engine in self.manager.engines
            ],
        }
