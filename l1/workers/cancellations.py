"""Which runs were cancelled, as a worker sees it: the latest ``cancelled`` event of every
run, read once at start and then kept current by the same subscription, so that no
render needs a look-up of its own."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec
from nats.js.api import DeliverPolicy

from l1.events import subjects
from l1.events.consumer import quietly
from l1.events.schemas import RUN_DECODER, RunCancelled
from l1.events.streams import EVENTS_STREAM

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

    from l1.schemas import RenderRequest

__all__ = ["Cancellations"]

log = logging.getLogger(__name__)

# How long a worker waits at start to learn the cancellations so far.
CATCH_UP = 10.0


class Cancellations:
    """The latest cancelled generation of every run; ``on_cancel(run_id, generation)``
    is called for each cancellation that arrives."""

    def __init__(self, js: JetStreamContext, on_cancel: Callable[[str, int], None]) -> None:
        self._js = js
        self._on_cancel = on_cancel
        self._latest: dict[str, int] = {}
        self._caught_up = asyncio.Event()
        self._subscription: JetStreamContext.PushSubscription | None = None

    async def start(self) -> None:
        """Subscribe, and wait (briefly) until every earlier cancellation is known."""
        subscription = await self._js.subscribe(
            subjects.run_event("*", "cancelled"),
            stream=EVENTS_STREAM,
            cb=self._received,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        )
        self._subscription = subscription
        info = await subscription.consumer_info()
        if not info.num_pending:
            self._caught_up.set()
        try:
            await asyncio.wait_for(self._caught_up.wait(), timeout=CATCH_UP)
        except TimeoutError:
            log.warning("cancellations not caught up after %.0fs; going on", CATCH_UP)

    async def stop(self) -> None:
        """Unsubscribe."""
        if self._subscription is not None:
            await quietly(self._subscription.unsubscribe())

    def cancelled(self, request: RenderRequest) -> bool:
        """True when ``request``'s run was cancelled in its generation or a later one."""
        return self._latest.get(request.run_id, -1) >= request.generation

    async def _received(self, msg: Msg) -> None:
        try:
            event = RUN_DECODER.decode(msg.data)
        except msgspec.ValidationError:
            event = None
        if isinstance(event, RunCancelled):
            previous = self._latest.get(event.run_id, -1)
            self._latest[event.run_id] = max(previous, event.generation)
            self._on_cancel(event.run_id, event.generation)
        if not msg.metadata.num_pending:
            self._caught_up.set()
