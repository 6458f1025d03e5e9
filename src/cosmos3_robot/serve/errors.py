"""vLLM's error envelope, `{"error": {"message", "type", "param", "code"}}` (vllm.entrypoints.openai.protocol
ErrorResponse), for every error `serve` answers: a client error is a 400 naming the parameter, and no input
gets a plain-text reply."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class ApiError(Exception):
    """A request the server refuses: `param` names the field (e.g. "extra_params.action")."""

    def __init__(self, param: str | None, message: str, status: int = 400):
        super().__init__(message)
        self.param, self.message, self.status = param, message, int(status)


def envelope(message: str, status: int, param: str | None = None) -> JSONResponse:
    kind = {400: "BadRequestError", 401: "AuthenticationError", 404: "NotFoundError", 409: "ConflictError",
            413: "BadRequestError", 429: "RateLimitError"}.get(status, HTTPStatus(status).phrase.replace(" ", "") + "Error")
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": status}}, status)


def install(app: FastAPI) -> None:
    """Every error through the envelope: ours, FastAPI's validation (400, as vLLM answers them), routing's
    404/405, and anything unexpected (500, JSON, the connection kept)."""

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError):
        return envelope(f"{exc.param}: {exc.message}" if exc.param else exc.message, exc.status, exc.param)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        first = (exc.errors() or [{}])[0]
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return envelope(f"{param}: {first.get('msg', 'invalid')}", 400, param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        return envelope(str(exc.detail), exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception):
        return envelope(f"internal error: {type(exc).__name__}: {exc}", 500)
