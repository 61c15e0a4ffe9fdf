"""Serving a process's metrics on a port of its own (workers and subscribers; the API
has ``GET /metrics``)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, start_http_server

__all__ = ["serving_metrics"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def serving_metrics(registry: CollectorRegistry, *, host: str, port: int) -> Iterator[None]:
    """Serve ``registry`` at ``http://host:port/metrics`` while inside (port 0: not at all)."""
    if not port:
        yield
        return
    # A small threaded server: scrapes are rare and quick, and need no event loop.
    server, thread = start_http_server(port, addr=host, registry=registry)
    log.info("metrics on http://%s:%d/metrics", host, port)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
