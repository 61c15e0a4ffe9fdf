"""Riding out what a NATS cluster does for a few seconds when it loses a server: while
the streams elect new leaders, JetStream answers "no responders", "no response from
stream" or "temporarily unavailable". Calls that are safe to repeat (publishes with a
de-duplication id, idempotent set-up, content-addressed puts) are repeated for a while
instead of failing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import NoStreamResponseError, ServerError, ServiceUnavailableError

from l1.errors import DependencyDown

__all__ = ["TRANSIENT", "patiently"]

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT = (
    DependencyDown,  # not connected this moment: the client is reconnecting
    NatsTimeoutError,
    NoRespondersError,
    NoStreamResponseError,
    ServiceUnavailableError,
    ServerError,
)


async def patiently(
    call: Callable[[], Awaitable[T]],
    *,
    within: float,
    what: str,
    also: tuple[type[Exception], ...] = (),
) -> T:
    """``call()``, repeated (after 0.25 s, then twice as long each time, up to 2 s) while
    it fails with a :data:`TRANSIENT` error (or one of ``also``), for up to ``within``
    seconds; the last error is raised after that."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    pause = 0.25
    waited_out: tuple[type[Exception], ...] = (*TRANSIENT, *also)
    while True:
        try:
            return await call()
        except waited_out as error:
            if loop.time() + pause > deadline:
                raise
            log.warning("%s: JetStream is not ready (%r); trying again", what, error)
        await asyncio.sleep(pause)
        pause = min(pause * 2, 2.0)
