"""The fleet as operators see it: live workers (from their heartbeats) and the state of
every durable consumer's queue."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from nats.js.errors import NotFoundError

from l1.events.streams import CACHE_PROJECTOR, EVENTS_STREAM, RENDER_STREAM, RUN_PROJECTOR, WORKERS
from l1.workers.heartbeat import WorkerBeat, live_workers

if TYPE_CHECKING:
    from nats.js import JetStreamContext

__all__ = ["CONSUMERS", "Fleet", "QueueState"]

# Every durable consumer, with its stream.
CONSUMERS = (
    (RENDER_STREAM, WORKERS),
    (EVENTS_STREAM, RUN_PROJECTOR),
    (EVENTS_STREAM, CACHE_PROJECTOR),
)


class QueueState(msgspec.Struct, kw_only=True):
    """One durable consumer: what waits for it, what it holds, what came back."""

    stream: str
    consumer: str
    pending: int  # in the stream, not yet delivered to the consumer
    ack_pending: int  # delivered, not yet acknowledged
    redelivered: int  # delivered more than once and not yet acknowledged
    waiting: int  # pull requests waiting for messages (idle capacity)


class Fleet:
    """Reads workers' heartbeats and consumers' state from JetStream."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def workers(self) -> list[WorkerBeat]:
        """Every live worker, by name."""
        return await live_workers(self._js)

    async def queues(self) -> list[QueueState]:
        """Every durable consumer's queue (one not yet declared is left out)."""
        states = []
        for stream, consumer in CONSUMERS:
            try:
                info = await self._js.consumer_info(stream, consumer)
            except NotFoundError:
                continue
            states.append(
                QueueState(
                    stream=stream,
                    consumer=consumer,
                    pending=info.num_pending or 0,
                    ack_pending=info.num_ack_pending or 0,
                    redelivered=info.num_redelivered or 0,
                    waiting=info.num_waiting or 0,
                )
            )
        return states
