"""Reading a durable pull consumer: fetch a batch when there is room for one, hand it
on, and stop when told. The worker and the subscribers both read their consumers so."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TYPE_CHECKING

import nats.errors

from l1.runtime import sleep_unless

if TYPE_CHECKING:
    import asyncio

    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

__all__ = ["batches", "quietly"]

log = logging.getLogger(__name__)

RETRY_DELAY = 1.0


async def batches(
    js: JetStreamContext,
    *,
    stream: str,
    durable: str,
    stop: asyncio.Event,
    room: Callable[[], Awaitable[int]],
    wait: float = 0.5,
) -> AsyncGenerator[list[Msg], None]:
    """Batches of messages from the durable consumer ``durable`` of ``stream`` until
    ``stop`` is set; each batch is at most what ``room()`` says can be taken now.

    Use it under :func:`contextlib.aclosing`, so that the subscription ends with the loop.
    """
    subscription = await js.pull_subscribe_bind(durable, stream=stream)
    try:
        while not stop.is_set():
            size = await room()
            try:
                messages = await subscription.fetch(size, timeout=wait)
            except TimeoutError:  # nothing to fetch; nats-py raises the builtin too
                continue
            except (nats.errors.ConnectionClosedError, nats.errors.NoServersError):
                return
            except nats.errors.Error as error:
                log.warning("%s: fetch failed: %s", durable, error)
                await sleep_unless(stop, RETRY_DELAY)
                continue
            yield messages
    finally:
        await quietly(subscription.unsubscribe())


async def quietly(action: Awaitable[object]) -> None:
    """Await ``action``; if NATS cannot be reached, log it and go on."""
    try:
        await action
    except (nats.errors.Error, TimeoutError) as error:
        log.warning("could not reach NATS: %s", error)
