"""The subscriber service: pulls from the projectors' durable consumers and applies events.

Events of different runs are applied concurrently; events of one run in stream order.
A handler that fails (Redis down) leaves the event un-acked with a delay, so it comes
back; nothing is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
import nats.errors
from redis.exceptions import RedisError

from l1.cache.activities import ActivityLog, ItemBeingDeleted
from l1.cache.index import CacheIndex
from l1.cache.references import References
from l1.dispatch import Dispatcher
from l1.events.publisher import Publisher
from l1.events.reconciler import Reconciler
from l1.events.schemas import CACHE_DECODER, RUN_DECODER
from l1.events.streams import CACHE_PROJECTOR, EVENTS_STREAM, RUN_PROJECTOR
from l1.events.subscribers import CacheProjector, RunProjector
from l1.run_store import RunStore

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext
    from redis.asyncio import Redis

    from l1.cache.store import ContentStore
    from l1.settings import Settings

__all__ = ["SubscriberService"]

log = logging.getLogger(__name__)

BATCH = 512
RETRY_DELAY = 1.0

Handler = Callable[[Any], Awaitable[None]]


class SubscriberService:
    """Runs the run and cache projectors until ``stop`` is set."""

    def __init__(
        self,
        js: JetStreamContext,
        *,
        runs: RunProjector,
        cache: CacheProjector,
        reconciler: Reconciler,
    ) -> None:
        self._js = js
        self._reconciler = reconciler
        self._consumers: list[tuple[str, msgspec.json.Decoder[Any], Handler]] = [
            (RUN_PROJECTOR, RUN_DECODER, runs.handle),
            (CACHE_PROJECTOR, CACHE_DECODER, cache.handle),
        ]

    @classmethod
    def for_redis(
        cls, nc: NATS, redis: Redis, store: ContentStore, settings: Settings
    ) -> SubscriberService:
        """The projectors writing into ``redis``, checking outputs in ``store``, and the
        reconciler."""
        index, runs, js = CacheIndex(redis), RunStore(redis), nc.jetstream()
        dispatcher = Dispatcher(store=store, index=index, publisher=Publisher(nc))
        projector = RunProjector(
            runs=runs,
            activities=ActivityLog(redis),
            references=References(redis),
            index=index,
            store=store,
            dispatcher=dispatcher,
        )
        reconciler = Reconciler(
            js,
            runs=runs,
            dispatcher=dispatcher,
            every=settings.reconcile_every,
            stale_after=settings.stale_after,
        )
        return cls(js, runs=projector, cache=CacheProjector(index), reconciler=reconciler)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set."""
        async with asyncio.TaskGroup() as group:
            for durable, decoder, handler in self._consumers:
                group.create_task(self._consume(durable, decoder, handler, stop))
            group.create_task(self._reconciler.run(stop))

    async def _consume(
        self,
        durable: str,
        decoder: msgspec.json.Decoder[Any],
        handler: Handler,
        stop: asyncio.Event,
    ) -> None:
        subscription = await self._js.pull_subscribe_bind(durable, stream=EVENTS_STREAM)
        try:
            while not stop.is_set():
                try:
                    messages = await subscription.fetch(BATCH, timeout=0.5)
                except TimeoutError:  # nothing to fetch; nats-py raises the builtin too
                    continue
                except (nats.errors.ConnectionClosedError, nats.errors.NoServersError):
                    return
                except nats.errors.Error as error:
                    log.warning("%s: fetch failed: %s", durable, error)
                    await _sleep_unless(stop, RETRY_DELAY)
                    continue
                await self._apply(messages, decoder, handler)
        finally:
            await subscription.unsubscribe()

    async def _apply(
        self, messages: list[Msg], decoder: msgspec.json.Decoder[Any], handler: Handler
    ) -> None:
        by_key: dict[str, list[Msg]] = defaultdict(list)
        for msg in messages:
            # Subject is l1.<kind>.<id>.<event>: the id orders events of one run or item.
            by_key[msg.subject.split(".")[2]].append(msg)
        await asyncio.gather(*(self._apply_in_order(g, decoder, handler) for g in by_key.values()))

    @staticmethod
    async def _apply_in_order(
        messages: list[Msg], decoder: msgspec.json.Decoder[Any], handler: Handler
    ) -> None:
        for index, msg in enumerate(messages):
            try:
                event = decoder.decode(msg.data)
            except msgspec.ValidationError as error:
                log.error("dropping malformed event on %s: %s", msg.subject, error)
                await msg.term()
                continue
            try:
                await handler(event)
            except Exception as error:
                if isinstance(error, ItemBeingDeleted | RedisError):
                    log.warning("projecting %s later: %r", msg.subject, error)
                else:
                    log.exception("projecting %s failed; it will be redelivered", msg.subject)
                # Keep the run's order: hand back this event and every later one.
                for later in messages[index:]:
                    await later.nak(delay=RETRY_DELAY)
                return
            await msg.ack()


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
