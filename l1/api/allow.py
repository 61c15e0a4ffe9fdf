"""``OPTIONS`` answered with every method a path serves.

Litestar 2 builds a path's automatic ``OPTIONS`` answer when the path's first handler is
registered, so its ``Allow`` names only that handler's methods (``/runs`` said
``GET, OPTIONS``, leaving out ``POST``; litestar-org/litestar#4169, fixed in 3.0).
This middleware answers ``OPTIONS`` itself from the route the request matched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from litestar.routes import HTTPRoute

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.types import ASGIApp, HTTPResponseStartEvent, Receive, Scope, Send

__all__ = ["answer_options"]


def answer_options(app: ASGIApp) -> ASGIApp:
    """Middleware: ``204`` with the whole ``Allow`` of the matched path for ``OPTIONS``."""
    allowed: dict[str, bytes] = {}  # path template -> Allow, worked out once per path

    async def options(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") != "OPTIONS":
            await app(scope, receive, send)
            return
        template = scope["path_template"]
        allow = allowed.get(template)
        if allow is None:
            allow = allowed[template] = _allow(scope["litestar_app"], template)
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": 204,
            "headers": [(b"allow", allow)],
        }
        await send(start)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return options


def _allow(litestar: Litestar, template: str) -> bytes:
    methods = {"OPTIONS"}
    for route in litestar.routes:
        if isinstance(route, HTTPRoute) and route.path_format == template:
            methods |= route.methods
    return ", ".join(sorted(methods)).encode()
