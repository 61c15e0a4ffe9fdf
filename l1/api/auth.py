"""Bearer tokens for the endpoints that change things.

With ``L1_API_TOKENS`` set, every request other than GET, HEAD and OPTIONS must carry
``Authorization: Bearer <token>`` with one of them: 401 without it, 403 with another.
Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import TYPE_CHECKING

from l1.errors import Forbidden, Unauthorized

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler
    from litestar.types import Guard

__all__ = ["token_guard"]

_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def token_guard(tokens: Sequence[str]) -> Guard:
    """A guard that requires one of ``tokens`` on mutating requests."""
    secrets = [token.encode() for token in tokens]

    # Async, so that Litestar calls it in the event loop rather than a thread.
    async def guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
        if connection.scope.get("method") in _READS:
            return
        scheme, _, token = connection.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("this server requires a bearer token: Authorization: Bearer TOKEN")
        offered = token.strip().encode()
        # Compare against every token so that timing says nothing about which matched.
        if not sum(hmac.compare_digest(offered, secret) for secret in secrets):
            raise Forbidden("the bearer token is not one this server accepts")

    return guard
