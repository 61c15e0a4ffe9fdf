"""Serving the API with uvicorn, with deadlines for clients that go quiet and responses
written whole.

uvicorn waits for a request's headers, and for its body, as long as a client likes;
one that opens connections and sends nothing (or a byte now and then) would hold them
for good. Here each request's headers must arrive within :data:`HEADERS_TIMEOUT` of
the first byte (or of the connection, for the first request), and a body that stops
for :data:`BODY_IDLE_TIMEOUT` ends the connection.

uvicorn also writes a response's head and its body in two system calls (two TCP
segments for the client to read); here what one turn of the event loop writes on a
connection goes out together.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

if TYPE_CHECKING:
    from litestar import Litestar

    from l1.settings import Settings

__all__ = [
    "BODY_IDLE_TIMEOUT",
    "HEADERS_TIMEOUT",
    "GuardedHttpProtocol",
    "serve",
    "server_config",
]

HEADERS_TIMEOUT = 10.0
BODY_IDLE_TIMEOUT = 30.0
# Writes up to this size are gathered with the others of the same turn of the loop.
GATHERED_AT_MOST = 64 * 1024
# Responses that never end by themselves: the dashboard's live event stream.
ENDLESS_PATHS = ("/ui/events",)


class _GatheredWrites:
    """A connection's transport whose small writes of one turn of the loop are sent as
    one; a large one (a download's block) goes at once, as joining would copy it."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._unsent: list[bytes] = []

    def write(self, data: bytes) -> None:
        if len(data) >= GATHERED_AT_MOST:
            self._flush()
            self._transport.write(data)
            return
        if not self._unsent:
            self._loop.call_soon(self._flush)
        self._unsent.append(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def _flush(self) -> None:
        if self._unsent and not self._transport.is_closing():
            self._transport.write(b"".join(self._unsent))
        self._unsent.clear()


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with deadlines for headers and for a stalled body."""

    headers_timeout = HEADERS_TIMEOUT
    body_idle_timeout = BODY_IDLE_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        gathered = _GatheredWrites(transport, self.loop)
        super().connection_made(gathered)  # type: ignore[arg-type]
        self._arm(self.headers_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # a later request on a kept-alive connection
            self._arm(self.headers_timeout)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        if self._has_body():
            self._arm(self.body_idle_timeout)

    def on_body(self, body: bytes) -> None:
        self._arm(self.body_idle_timeout)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def shutdown(self) -> None:
        """Stop as uvicorn does (finish the response in progress, then close), but end
        an endless stream at once: waiting for it would hold the whole shutdown up, and
        its page reconnects by itself."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            path = str(cycle.scope.get("path", ""))
            if path.startswith(ENDLESS_PATHS) and not self.transport.is_closing():
                self.transport.close()
                return
        super().shutdown()

    def _has_body(self) -> bool:
        headers = dict(self.headers)
        return headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def server_config(
    app: Litestar,
    settings: Settings,
    *,
    headers_timeout: float = HEADERS_TIMEOUT,
    body_idle_timeout: float = BODY_IDLE_TIMEOUT,
    **options: Any,
) -> uvicorn.Config:
    """uvicorn's configuration for ``app`` as ``settings`` say; ``options`` override."""
    protocol: type[GuardedHttpProtocol] = GuardedHttpProtocol
    if (headers_timeout, body_idle_timeout) != (HEADERS_TIMEOUT, BODY_IDLE_TIMEOUT):
        deadlines = {"headers_timeout": headers_timeout, "body_idle_timeout": body_idle_timeout}
        protocol = type("GuardedHttpProtocol", (GuardedHttpProtocol,), deadlines)
    defaults: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "http": protocol,
        "access_log": False,  # a line per request costs more than the request itself
        "timeout_graceful_shutdown": 10,
    }
    return uvicorn.Config(app, **(defaults | options))


def serve(settings: Settings, *, processes: int = 1, subscribers: bool = True) -> None:
    """Serve the API until told to stop, in one process or in ``processes`` processes
    sharing the port (each builds its app from the ``L1_*`` environment; the
    subscribers then run apart, as ``l1 events``)."""
    from l1.api.app import create_app

    if processes == 1:
        app = create_app(settings, subscribers=subscribers)
        uvicorn.Server(server_config(app, settings, log_level="info")).run()
        return
    uvicorn.run(
        "l1.api.app:create_shared_app",
        factory=True,
        workers=processes,
        host=settings.host,
        port=settings.port,
        http=GuardedHttpProtocol,
        access_log=False,
        timeout_graceful_shutdown=10,
        log_level="info",
    )
