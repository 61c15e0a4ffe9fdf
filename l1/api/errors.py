"""The one place where errors become HTTP responses.

Domain errors (:mod:`l1.errors`) say what happened; this module says what status
that is. A dependency that is down answers 503 naming it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import nats.errors
from litestar import MediaType, Response
from litestar.exceptions import NotFoundException
from nats.js.errors import APIError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from l1 import errors

if TYPE_CHECKING:
    from litestar import Request
    from litestar.types import ExceptionHandlersMap

__all__ = ["exception_handlers", "expected_errors"]

log = logging.getLogger(__name__)

STATUS: dict[type[errors.L1Error], int] = {
    errors.InvalidInput: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.TooLarge: 413,
    errors.Unprocessable: 422,
    errors.UpstreamError: 502,
    errors.DependencyDown: 503,
}


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> Response[dict]:
    return Response(
        {"status_code": status, "detail": detail},
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def _domain(_: Request, error: errors.L1Error) -> Response[dict]:
    status = next(code for kind, code in STATUS.items() if isinstance(error, kind))
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return _error(status, str(error), headers)


def _redis_down(_: Request, error: Exception) -> Response[dict]:
    log.warning("redis unreachable: %s", error)
    return _error(503, "Redis is unreachable; try again when it is back")


def _nats_down(_: Request, error: Exception) -> Response[dict]:
    log.warning("nats unreachable: %s", error)
    return _error(503, "NATS is unreachable; try again when it is back")


def _jetstream_refused(_: Request, error: APIError) -> Response[dict]:
    # JetStream answered, so NATS is up: say what it refused instead.
    log.error("jetstream refused a request: %s", error)
    return _error(502, f"JetStream refused the request: {error.description or error}")


_DEPENDENCY_ERRORS = (RedisConnectionError, RedisTimeoutError)


def _too_deep(_: Request, error: RecursionError) -> Response[dict]:
    return _error(400, "the JSON body is nested too deeply")


def _not_found(request: Request, error: NotFoundException) -> Response[dict]:
    # An encoded '/' or a '..' segment never names a resource: it is a malformed path,
    # refused as such rather than looked up.
    raw = request.scope.get("raw_path") or b""
    if b"%2f" in raw.lower() or ".." in request.scope["path"].split("/"):
        return _error(400, "malformed path: encoded '/' and '..' segments are not accepted")
    return _error(404, error.detail)


def exception_handlers() -> ExceptionHandlersMap:
    """Handlers for every error L1 raises on purpose."""
    return {
        RecursionError: _too_deep,
        NotFoundException: _not_found,
        errors.L1Error: _domain,
        RedisConnectionError: _redis_down,
        RedisTimeoutError: _redis_down,
        nats.errors.Error: _nats_down,
        APIError: _jetstream_refused,
    }


def expected_errors() -> set[int | type[Exception]]:
    """Errors logged in one line, without a traceback: they are answers, not bugs."""
    # Litestar matches the exact exception type, so list each kind.
    return {400, 401, 403, 404, 405, 409, 413, 416, 422, *STATUS, *_DEPENDENCY_ERRORS}
