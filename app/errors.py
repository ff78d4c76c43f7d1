"""Domain errors: what the services raise when a request cannot be served, and the one place that turns each into
its HTTP answer (`install_error_handlers`). Services never raise HTTPException: the forms and the studio call the
same services and show these errors their own way."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from runtimes.contract import QueueFullError
from runtimes.inputs import InputProblems


class AppError(Exception):
    """A request that cannot be served; `detail` is the answer's body (a message, or a structure that names each
    problem)."""

    status_code = 500

    def __init__(self, detail: Any, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail if isinstance(detail, str) else str(detail))
        self.detail = detail
        self.headers = headers


class NotFound(AppError):
    status_code = 404


class Unauthorized(AppError):
    status_code = 401

    def __init__(self, detail: Any) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    status_code = 403


class Conflict(AppError):
    status_code = 409


class Unprocessable(AppError):
    """The request's content is wrong: `problems`, when given, names each thing to fix."""

    status_code = 422

    def __init__(self, message: str, problems: list[Any] | None = None, **extra: Any) -> None:
        """A plain message, or with `problems` (and any `extra` fields) an object holding it."""
        structured = problems is not None or bool(extra)
        super().__init__({"message": message, **({"problems": problems} if problems is not None else {}), **extra}
                         if structured else message)
        self.message, self.problems = message, problems or []


class Unavailable(AppError):
    """Nothing can serve it now (no engine, Modal unreachable); `retry_after` seconds, when it is worth a retry."""

    status_code = 503

    def __init__(self, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)} if retry_after is not None else None)


def explain(exc: AppError) -> str:
    """The error as text for a page (the studio, a form): the message, then each problem on a line."""
    if isinstance(exc, Unprocessable):
        return exc.message + "".join(f"\n- {problem}" for problem in exc.problems)
    return str(exc.detail)


def invalid_inputs(problems: list[dict[str, Any]]) -> Unprocessable:
    return Unprocessable("The inputs do not fit this app", problems)


def _answer(exc: AppError) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    """Domain errors -> HTTP answers, for every route."""

    async def app_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        return _answer(exc)

    async def input_problems(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, InputProblems)
        return _answer(invalid_inputs(exc.problems))

    async def queue_full(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, QueueFullError)
        return JSONResponse({"detail": str(exc)}, status_code=429,
                            headers={"Retry-After": str(int(exc.retry_after + 0.999))})

    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(InputProblems, input_problems)
    app.add_exception_handler(QueueFullError, queue_full)
