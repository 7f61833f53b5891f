"""OpenAI error objects: ``{"error": {"message", "type", "param", "code"}}`` with a status.

Every failure a client can cause maps to one of these; anything else is logged here and
reaches the client as a bare 500 without internals (no stack trace leaves the server).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import errors
from ..errors import BitnetError, ContextOverflowError, InvalidParameterError

log = logging.getLogger("bitnet_backend.server")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    503: "server_overloaded",
}


class ApiError(Exception):
    """A client-visible failure: HTTP ``status`` plus the OpenAI error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or _TYPES.get(status, "server_error")

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def unsupported(param: str, why: str = "") -> ApiError:
    """400 for an OpenAI parameter this server does not implement."""
    tail = f": {why}" if why else ""
    return ApiError(
        400,
        f"{param} is not supported by this server{tail}",
        param=param,
        code="unsupported_parameter",
    )


def from_model_error(exc: BitnetError) -> ApiError:
    """The status of an error the Model API raised: the request's fault (400) or not."""
    if isinstance(exc, ContextOverflowError):
        return ApiError(400, str(exc), param="messages", code="context_length_exceeded")
    if isinstance(exc, InvalidParameterError):
        return ApiError(400, str(exc), code="invalid_value")
    queue_timeout = getattr(errors, "QueueTimeoutError", None)  # models with a scheduler
    if queue_timeout is not None and isinstance(exc, queue_timeout):
        return ApiError(503, str(exc), code="queue_timeout")
    if str(exc) == "the model is closed":  # the server is shutting down
        return ApiError(503, "the model is shutting down", code="model_unavailable")
    log.error("model error while serving a request: %s", exc)
    return ApiError(500, str(exc), type="server_error", code="model_error")


def as_api_error(exc: BaseException) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, BitnetError):
        return from_model_error(exc)
    log.error("internal error while serving a request", exc_info=exc)
    return ApiError(500, "internal server error", type="server_error")


def error_response(exc: BaseException) -> JSONResponse:
    err = as_api_error(exc)
    headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
    return JSONResponse(err.body(), status_code=err.status, headers=headers)


def validation_error(problems: Sequence[Any]) -> ApiError:
    """400 naming the first field pydantic (or FastAPI) found wrong."""
    first = problems[0] if problems else {}
    loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return ApiError(
        400,
        f"{loc or 'body'}: {first.get('msg', 'invalid request')}",
        param=loc or None,
        code="invalid_type",
    )


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception a request can raise to an OpenAI error response."""

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(exc)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(validation_error(exc.errors()))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        msg = "no such endpoint" if exc.status_code == 404 else str(exc.detail)
        return error_response(ApiError(exc.status_code, f"{request.url.path}: {msg}"))

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(BitnetError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_api_error)
