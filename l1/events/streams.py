"""JetStream streams and durable consumers, declared in code and created idempotently."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError

from l1.events import subjects
from l1.events.transient import patiently

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from l1.settings import Settings

__all__ = [
    "CACHE_PROJECTOR",
    "EVENTS_STREAM",
    "READY_WITHIN",
    "RENDER_STREAM",
    "RUN_PROJECTOR",
    "WORKERS",
    "ensure_streams",
    "stream_configs",
]

RENDER_STREAM = "L1_RENDER"
EVENTS_STREAM = "L1_EVENTS"
DEAD_STREAM = "L1_DEAD"
WORKERS = "workers"
RUN_PROJECTOR = "run-projector"
CACHE_PROJECTOR = "cache-projector"

# A cluster's servers accept connections before they have elected their leaders.
READY_WITHIN = 120.0

# JetStream drops a message whose Nats-Msg-Id it saw within this window: long enough for
# a publish retried after a lost acknowledgement (seconds), short enough that the ids it
# keeps cost the server little. Requests sent again on purpose are new copies anyway.
DUPLICATE_WINDOW = 120.0


def stream_configs(replicas: int = 1) -> list[StreamConfig]:
    """The three streams: render work queue, lifecycle events, and dead letters, each
    kept on ``replicas`` servers of a cluster (``L1_REPLICAS``)."""
    return [
        StreamConfig(
            name=RENDER_STREAM,
            subjects=[subjects.RENDER],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW,
            num_replicas=replicas,
        ),
        StreamConfig(
            name=EVENTS_STREAM,
            subjects=[subjects.RUN_EVENTS, subjects.CACHE_EVENTS],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW,
            max_age=30 * 24 * 3600.0,
            num_replicas=replicas,
        ),
        StreamConfig(
            name=DEAD_STREAM,
            subjects=[subjects.DEAD],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW,
            num_replicas=replicas,
        ),
    ]


def consumer_configs(settings: Settings) -> dict[str, list[ConsumerConfig]]:
    """Durable pull consumers, by stream: the worker pool and the two projectors."""
    return {
        RENDER_STREAM: [
            ConsumerConfig(
                durable_name=WORKERS,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=settings.ack_wait,
                # Unlimited here: the worker counts deliveries itself, so that the last
                # one fails the run instead of leaving it stranded in the queue.
                max_deliver=-1,
                max_ack_pending=10_000,
                deliver_policy=DeliverPolicy.ALL,
            )
        ],
        EVENTS_STREAM: [
            ConsumerConfig(
                durable_name=RUN_PROJECTOR,
                filter_subject=subjects.RUN_EVENTS,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=30.0,
                max_ack_pending=20_000,
                deliver_policy=DeliverPolicy.ALL,
            ),
            ConsumerConfig(
                durable_name=CACHE_PROJECTOR,
                filter_subject=subjects.CACHE_EVENTS,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=30.0,
                max_ack_pending=20_000,
                deliver_policy=DeliverPolicy.ALL,
            ),
        ],
    }


async def ensure_streams(js: JetStreamContext, settings: Settings) -> None:
    """Create or update every stream and consumer; safe to call from every process,
    and while a cluster is still starting (for up to :data:`READY_WITHIN` seconds)."""
    await patiently(
        lambda: _declare(js, settings),
        within=READY_WITHIN,
        what="declaring streams",
        # A stream another server just created may not be known here yet.
        also=(NotFoundError,),
    )


async def _declare(js: JetStreamContext, settings: Settings) -> None:
    for config in stream_configs(settings.replicas):
        try:
            await js.stream_info(config.name)  # type: ignore[arg-type]
        except NotFoundError:
            # Another process may create it first; either way it exists afterwards.
            with contextlib.suppress(BadRequestError):
                await js.add_stream(config)
        else:
            await js.update_stream(config)
    for stream, consumers in consumer_configs(settings).items():
        for consumer in consumers:
            await js.add_consumer(stream, consumer)
