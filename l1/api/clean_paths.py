"""Ids are taken only from clean path segments.

The server decodes ``%2F`` in a path to ``/`` before routing, so ``/runs/<id>%2Fcancel``
would reach ``POST /runs/<id>/cancel``, and an id holding a ``/`` could name another
resource than the one asked for. No id, hash or name of L1's contains a ``/``, so a path
that encodes one is malformed: refused with 400 before any route looks anything up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from l1.errors import InvalidInput

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Receive, Scope, Send

__all__ = ["ENCODED_SLASH", "refuse_encoded_slashes"]

ENCODED_SLASH = "malformed path: encoded '/' and '..' segments are not accepted"


def refuse_encoded_slashes(app: ASGIApp) -> ASGIApp:
    """Middleware: :class:`~l1.errors.InvalidInput` (400) for a path with ``%2F`` in it.

    Litestar runs it once a route matched; a path that matches none is refused the same
    way by the 404 handler (:mod:`l1.api.errors`)."""

    async def clean_only(scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") or b""
        if b"%" in raw and b"%2f" in raw.lower():
            raise InvalidInput(ENCODED_SLASH)
        await app(scope, receive, send)

    return clean_only
