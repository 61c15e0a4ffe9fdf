"""The subscribers: durable consumers of ``L1_EVENTS`` that hand each fetched batch of
events to a handler (a projector) until stopped.

A handler gets the batch in stream order and says, for each event, whether it was
applied. An event it could not apply yet (an item being deleted), and every later event
of the same run or item, is handed back with a delay, so they come back in order; a
handler that fails outright (Redis down) hands back the whole batch. Nothing is
skipped. A payload that does not decode is terminated.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
from redis.exceptions import RedisError

from l1.events.consumer import batches
from l1.events.streams import EVENTS_STREAM

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.aio.msg import Msg

    from l1.events.metrics import SubscriberMetrics

__all__ = ["Subscriber", "Subscribers"]

log = logging.getLogger(__name__)

BATCH = 512
RETRY_DELAY = 1.0

Handler = Callable[[list[Any]], Awaitable[list[bool]]]


@dataclass(frozen=True)
class Subscriber:
    """One durable consumer and what is done with its events."""

    durable: str
    decoder: msgspec.json.Decoder[Any]
    handler: Handler


class Subscribers:
    """Runs subscribers side by side until stopped."""

    def __init__(
        self,
        nc: NATS,
        subscribers: list[Subscriber],
        *,
        metrics: SubscriberMetrics | None = None,
    ) -> None:
        self._nc = nc
        self._subscribers = subscribers
        self._metrics = metrics

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set."""
        async with asyncio.TaskGroup() as group:
            for subscriber in self._subscribers:
                group.create_task(self._consume(subscriber, stop))

    async def _consume(self, subscriber: Subscriber, stop: asyncio.Event) -> None:
        async def room() -> int:
            return BATCH

        pulled = batches(
            self._nc, stream=EVENTS_STREAM, durable=subscriber.durable, stop=stop, room=room
        )
        async with aclosing(pulled) as messages:
            async for batch in messages:
                began = time.monotonic()
                applied, retried, dropped = await _apply(batch, subscriber)
                if self._metrics is not None:
                    consumer = subscriber.durable
                    self._metrics.applied.labels(consumer).inc(applied)
                    self._metrics.retried.labels(consumer).inc(retried)
                    self._metrics.dropped.labels(consumer).inc(dropped)
                    self._metrics.batch_seconds.labels(consumer).observe(time.monotonic() - began)


async def _apply(messages: list[Msg], subscriber: Subscriber) -> tuple[int, int, int]:
    """Project one batch; how many events were applied, handed back and dropped."""
    decoded: list[tuple[Msg, Any]] = []
    for msg in messages:
        try:
            decoded.append((msg, subscriber.decoder.decode(msg.data)))
        except msgspec.ValidationError as error:
            log.error("dropping malformed event on %s: %s", msg.subject, error)
            await msg.term()
    try:
        applied = await subscriber.handler([event for _, event in decoded])
    except RedisError as error:
        log.warning("%s: projecting later: %r", subscriber.durable, error)
        applied = [False] * len(decoded)
    except Exception:
        log.exception("%s: projecting failed; the events will be redelivered", subscriber.durable)
        applied = [False] * len(decoded)
    # An event not applied holds back every later one about the same run or item.
    held_back: set[str] = set()
    acked = 0
    for (msg, _), done in zip(decoded, applied, strict=True):
        key = msg.subject.split(".")[2]  # l1.<kind>.<id>.<event>
        if done and key not in held_back:
            await msg.ack()
            acked += 1
        else:
            held_back.add(key)
            await msg.nak(delay=RETRY_DELAY)
    return acked, len(decoded) - acked, len(messages) - len(decoded)
