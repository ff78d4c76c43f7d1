"""Domain errors: what the services raise when a request cannot be served, and the one place that turns each into
its HTTP answer (`install_error_handlers`). Services never raise HTTPException: the forms and the studio call the
same services and show these errors their own way."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from app.v2 import errors as v2_errors
from publisher.quoting import cut
from runtimes.contract import QueueFullError
from runtimes.inputs import InputProblems

MAX_PROBLEMS = 50  # listed in one answer
_MAX_MESSAGE = 500  # a validation message can quote a schema's pattern or choices: kept readable
_TOO_DEEP = "The body is nested too deeply to read: a request here is a few levels of objects and lists deep."


class AppError(Exception):
    """A request that cannot be served; `detail` is the answer's body (a message, or a structure that names each
    problem)."""

    status_code = 500

    def __init__(self, detail: Any, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail if isinstance(detail, str) else str(detail))
        self.detail = detail
        self.headers = headers


class BadRequest(AppError):
    """The body itself is malformed (a multipart body cut short), before its content can be checked."""

    status_code = 400


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
        if problems is not None and len(problems) > MAX_PROBLEMS:  # 10,000 copies of one mistake help no one
            problems = [*problems[:MAX_PROBLEMS], f"... and {len(problems) - MAX_PROBLEMS} more problems"]
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
    detail = exc.detail
    if isinstance(detail, dict) and "message" in detail:
        problems = detail.get("problems") or []
        return str(detail["message"]) + "".join(f"\n- {_problem_text(problem)}" for problem in problems)
    return str(detail)


def _problem_text(problem: Any) -> str:
    if not isinstance(problem, dict) or "message" not in problem:
        return str(problem)
    # A published input's problem is told by its name; one about a node's input names the node in its message.
    named = "input" in problem and "node" not in problem
    return f"{problem['input']}: {problem['message']}" if named else str(problem["message"])


def invalid_inputs(problems: list[dict[str, Any]]) -> Unprocessable:
    # An input's name is the caller's too (an unknown one is quoted back): its start only.
    named = [{**problem, "input": cut(str(problem["input"]))} if "input" in problem else problem
             for problem in problems]
    return Unprocessable("The inputs do not fit this app", named)


class ErrorDetail(BaseModel):
    """A structured error: the message, and what to fix, one entry per problem."""

    model_config = ConfigDict(extra="allow")
    message: str
    problems: list[Any] = Field(default_factory=list, description="each problem, naming where it is")


class ErrorOut(BaseModel):
    """Every error answer of the API has this one shape."""

    detail: str | ErrorDetail = Field(description="what is wrong and how to fix it: a message, or an object with "
                                                  "the message and each problem")


_MEANING = {
    400: "the body is malformed (a truncated or invalid multipart body)",
    401: "no API key, or an unknown or revoked one: send `Authorization: Bearer <key>`",
    403: "this key may not do this (an admin key is needed, or another key's run)",
    404: "no such resource",
    409: "conflicts with the resource's state",
    413: "the request body is over this server's cap (--max-upload-mb)",
    422: "the request does not fit: each problem is named",
    429: "the queue is full: retry after `Retry-After` seconds",
    503: "nothing can serve it now (no engine ready, Modal unreachable, uploads not storable)",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for the error answers a route can give, all with the one error shape."""
    return {code: {"model": ErrorOut, "description": _MEANING[code]} for code in codes}


def _answer(exc: AppError, request: Request | None = None) -> JSONResponse:
    if request is not None and v2_errors.is_v2(request):  # a Comfy API v2 surface: its own envelope
        return v2_errors.from_http(exc.status_code, exc.detail, exc.headers)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def _problem(error: dict[str, Any]) -> dict[str, Any]:
    """One pydantic error without its `input` (the whole value, possibly megabytes) or `ctx`."""
    return {"loc": list(error.get("loc", ())), "message": str(error.get("msg", ""))[:_MAX_MESSAGE],
            "type": error.get("type", "")}


def install_error_handlers(app: FastAPI) -> None:
    """Domain errors -> HTTP answers, for every route."""

    async def app_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        return _answer(exc, request)

    async def input_problems(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, InputProblems)
        return _answer(invalid_inputs(exc.problems), request)

    async def queue_full(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, QueueFullError)
        retry_after = int(exc.retry_after + 0.999)
        if v2_errors.is_v2(request):
            return v2_errors.answer(v2_errors.V2Error("queue_full", str(exc), retry_after=retry_after))
        return JSONResponse({"detail": str(exc)}, status_code=429, headers={"Retry-After": str(retry_after)})

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [_problem(error) for error in exc.errors()]
        return _answer(Unprocessable("The request does not fit this endpoint: see each problem's loc", problems),
                       request)

    async def v2_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, v2_errors.V2Error)
        return v2_errors.answer(exc)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette's own answers (404 no such route, 405 method, 413 body too large): the same shape.
        assert isinstance(exc, HTTPException)
        detail = exc.detail if isinstance(exc.detail, str | dict) else str(exc.detail)
        if exc.status_code == 400 and detail == "There was an error parsing the body":  # FastAPI's JSON parse
            detail = (_TOO_DEEP if isinstance(exc.__cause__, RecursionError) else
                      f"The body cannot be read as JSON ({type(exc.__cause__).__name__}): send UTF-8 JSON.")
        if v2_errors.is_v2(request):
            return v2_errors.from_http(exc.status_code, detail, exc.headers)
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(v2_errors.V2Error, v2_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(InputProblems, input_problems)
    app.add_exception_handler(QueueFullError, queue_full)
