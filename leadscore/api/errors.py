"""Errors as JSON a person can act on; a 500 never shows internals.

Every error body is ``{"error": {"code": ..., "message": ..., "details": [...]}}``.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from leadscore.infra.log_repeats import quiet_repeats

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the client can fix (or must know about), mapped to an HTTP status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers or {}


#: What a 503 tells the client: a dependency is down; ask again in a few seconds.
RETRY_LATER = {"Retry-After": "5"}


def error_body(code: str, message: str, details: list[Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}}


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    """JSON bodies for our errors, validation errors, HTTP errors and crashes."""
    quiet_repeats((__name__,))  # an outage repeats the Redis line on every request

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {**({"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}), **exc.headers}
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details), exc.status, headers or None
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": _where(tuple(e.get("loc", ()))), "problem": e.get("msg", "invalid")}
            for e in exc.errors()
        ]
        summary = "; ".join(f"{d['field']}: {d['problem']}" for d in details[:5])
        more = f" (and {len(details) - 5} more)" if len(details) > 5 else ""
        return JSONResponse(
            error_body(
                "invalid_request",
                f"the request is not valid: {summary}{more}",
                jsonable_encoder(details),
            ),
            422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path} (see /docs)"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path} (see /docs)"
        return JSONResponse(
            error_body(code, message), exc.status_code, getattr(exc, "headers", None)
        )

    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    async def _redis_down(request: Request, exc: Exception) -> JSONResponse:
        # the same line for every request of an outage: logged once a minute, with a count
        log.warning("Redis unreachable; answering 503 with Retry-After (%s)", type(exc).__name__)
        return JSONResponse(
            error_body(
                "unavailable", "the score store (Redis) is unreachable; retry in a few seconds"
            ),
            503,
            RETRY_LATER,
        )

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        reference = uuid.uuid4().hex[:12]
        log.exception(
            "unhandled error on %s %s (reference %s)", request.method, request.url.path, reference
        )
        return JSONResponse(
            error_body(
                "internal_error",
                f"the server failed to answer; the log has the details under reference {reference}",
            ),
            500,
        )
