"""Why an engine could not be found, started or reached; each message says what to do."""


class EngineError(RuntimeError):
    """Base class of engine management failures."""


class EngineNotFoundError(EngineError):
    """No ComfyUI where we were told (or expected) to find one."""


class EnginePortInUseError(EngineError):
    """The port the engine should listen on is taken."""


class EngineStartError(EngineError):
    """The engine process died during start-up; `log_tail` holds its last log lines."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


class EngineStartTimeoutError(EngineStartError):
    """The engine did not answer `/system_stats` in time."""


class EngineUnreachableError(EngineError):
    """A ComfyUI given by URL does not answer."""
