"""The one place where errors become HTTP responses.

Domain errors (:mod:`l1.errors`) say what happened; this module says what status
that is. A dependency that is down answers 503 naming it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import nats.errors
from litestar import MediaType, Response
from litestar.exceptions import HTTPException, NotFoundException
from nats.js.errors import APIError, ServiceUnavailableError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from l1 import errors
from l1.events.transient import TRANSIENT

if TYPE_CHECKING:
    from litestar import Request
    from litestar.types import ExceptionHandlersMap

__all__ = ["ErrorBody", "exception_handlers", "expected_errors"]

log = logging.getLogger(__name__)

STATUS: dict[type[errors.L1Error], int] = {
    errors.InvalidInput: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.TooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.Unprocessable: 422,
    errors.UpstreamError: 502,
    errors.DependencyDown: 503,
    errors.InsufficientStorage: 507,
}


# What a message may echo of a request: enough to recognise it, never the whole of it.
MAX_DETAIL = 500


class ErrorBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Every error's JSON body, as :func:`_error` writes it (and as OpenAPI documents it)."""

    status_code: Annotated[int, msgspec.Meta(ge=400, le=599)]
    detail: Annotated[str, msgspec.Meta(max_length=MAX_DETAIL)]
    # What a validation error found at fault: where, and why. Absent when empty.
    extra: dict[str, Any] | list[Any] | None = None


def _cut(text: str) -> str:
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def _cut_all(value: Any) -> Any:
    """``value`` with every string cut short and at most 20 entries per list."""
    if isinstance(value, str):
        return _cut(value)
    if isinstance(value, list | tuple):
        return [_cut_all(v) for v in value[:20]]
    if isinstance(value, dict):
        return {k: _cut_all(v) for k, v in value.items()}
    return value


def _error(
    status: int, detail: str, headers: dict[str, str] | None = None, extra: Any = None
) -> Response[dict]:
    body: dict[str, Any] = {"status_code": status, "detail": _cut(detail)}
    if extra:
        body["extra"] = _cut_all(extra)
    return Response(
        body,
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


def _jetstream_refused(request: Request, error: APIError) -> Response[dict]:
    if isinstance(error, ServiceUnavailableError) or error.code == 503:
        # A cluster electing leaders: it will be back shortly.
        return _nats_down(request, error)
    # JetStream answered, so NATS is up: say what it refused instead.
    log.error("jetstream refused a request: %s", error)
    return _error(502, f"JetStream refused the request: {error.description or error}")


_DEPENDENCY_ERRORS = (RedisConnectionError, RedisTimeoutError, *TRANSIENT)


def _too_deep(_: Request, error: RecursionError) -> Response[dict]:
    return _error(400, "the JSON body is nested too deeply")


def _not_utf8(_: Request, error: UnicodeDecodeError) -> Response[dict]:
    return _error(400, f"the body is not valid UTF-8 (byte {error.start})")


def _http(_: Request, error: HTTPException) -> Response[dict]:
    # Litestar's own errors (validation, size, method): the same JSON shape, cut short.
    return _error(error.status_code, str(error.detail), error.headers, error.extra)


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
        UnicodeDecodeError: _not_utf8,
        HTTPException: _http,
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
    bodies = {RecursionError, UnicodeDecodeError}  # too deeply nested, not UTF-8: 400
    return {400, 401, 403, 404, 405, 409, 413, 416, 422, *STATUS, *_DEPENDENCY_ERRORS, *bodies}
