"""Exception handlers: every error leaves the API as ``{"error": ..., "hint": ...}``.

``FerryError`` subclasses answer with their own ``status``; request
validation failures answer 400 naming the field; unknown routes 404; any
other exception is a bug, logged with its traceback and answered 500 with a
sentence (never the traceback). A 401 carries ``WWW-Authenticate``; a 429
(``RateLimited``) carries ``Retry-After`` in whole seconds, rounded up.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ferry.errors import FerryError, RateLimited
from ferry.server.ratelimit import retry_after_header

__all__ = ["describe_validation_errors", "error_response", "install_error_handlers"]

log = logging.getLogger("ferry.server")
_SHOWN_ERRORS = 3


def error_response(
    status: int, message: str, hint: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The JSON error body every failure uses."""
    return JSONResponse({"error": message, "hint": hint}, status_code=status, headers=headers)


def _where(location: Sequence[Any]) -> str:
    parts = [str(p) for p in location]
    if not parts:
        return "request"
    kind, path = parts[0], ".".join(parts[1:])
    if kind == "body":
        return path or "request body"
    return f"{kind} parameter {path}" if path else kind


def describe_validation_errors(errors: Sequence[Any]) -> str:
    """One sentence naming the offending fields, e.g. ``config.image: Field required``."""
    items = []
    for error in errors[:_SHOWN_ERRORS]:
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "malformed")
            return f"request body is not valid JSON: {reason}"
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        items.append(f"{_where(error.get('loc', ()))}: {message}")
    more = len(errors) - _SHOWN_ERRORS
    suffix = f" (and {more} more)" if more > 0 else ""
    return "invalid request: " + "; ".join(items) + suffix


async def _ferry_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FerryError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": retry_after_header(exc.retry_after)}
    status = exc.status if 400 <= exc.status < 600 else 500
    if status >= 500:
        log.error("request failed: %s", exc)
    return error_response(status, exc.message, exc.hint, headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(
        400, describe_validation_errors(exc.errors()), "fix the named field and try again"
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}"
        return error_response(404, message, "see /openapi.json for the API")
    if exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
        return error_response(405, message, "see /openapi.json for the API")
    return error_response(exc.status_code, str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("internal error on %s %s", request.method, request.url.path)
    return error_response(
        500,
        f"internal error while handling {request.method} {request.url.path}",
        "this is a bug in Ferry; the server log has the details",
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers above on ``app``."""
    app.add_exception_handler(FerryError, _ferry_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
