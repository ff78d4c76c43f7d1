"""Start the engines in the background and keep what a page or a probe needs to know about them."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

from runtimes.engine.errors import EngineError
from runtimes.engine.install import EngineInstallError
from runtimes.engine.manager import Engine, EngineManager

State = Literal["starting", "ready", "failed", "stopped"]


class EngineStatus:
    """Owns the engine manager's start-up: the web server answers at once while engines start."""

    def __init__(self, manager: EngineManager, echo: bool = True) -> None:
        self.manager = manager
        self.state: State = "starting"
        self.error: str | None = None
        self.progress: deque[str] = deque(maxlen=200)
        self._echo = echo
        self._thread: threading.Thread | None = None
        self.started_at = time.time()
        # Called from a start-up thread with each engine as soon as it answers (the first one serves at once).
        self.on_engine_ready: Callable[[Engine], None] | None = None
        manager.progress = self._record  # the manager reports install and start-up steps here

    def _record(self, message: str) -> None:
        self.progress.append(message)
        if self._echo:
            print(message, flush=True)

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
        self.state = "ready"
        if self.on_engine_ready is not None:
            self.on_engine_ready(engine)

    def wait(self, timeout: float | None = None) -> State:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.state

    def stop(self) -> None:
        self.manager.stop()
        self.state = "stopped"

    def is_ready(self) -> bool:
        return self.state == "ready" and any(engine.is_ready() for engine in self.manager.engines)

    def describe(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "ready": self.is_ready(),
            "error": self.error,
            "progress": list(self.progress)[-20:],
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
