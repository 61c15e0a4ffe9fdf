"""Publishing events and render requests to JetStream, each with a de-duplication id."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from nats.js.api import Header

from l1.errors import DependencyDown
from l1.events import subjects

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.js.api import PubAck

    from l1.events.schemas import Event
    from l1.schemas import RenderRequest

__all__ = ["Publisher"]

_encoder = msgspec.json.Encoder()


class Publisher:
    """Publishes to L1's streams and waits for JetStream to confirm each message."""

    def __init__(self, nc: NATS, *, timeout: float = 5.0) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._timeout = timeout

    def _check_connected(self) -> None:
        # Fail at once rather than buffer while disconnected and time out later.
        if not self._nc.is_connected:
            raise DependencyDown("NATS is unreachable; try again when it is back")

    async def event(self, event: Event) -> PubAck:
        """Publish a lifecycle event on its subject; ``event_id`` is its de-duplication id."""
        self._check_connected()
        return await self._js.publish(
            event.subject,
            _encoder.encode(event),
            timeout=self._timeout,
            headers={Header.MSG_ID: event.event_id},
        )

    async def dead_letter(self, subject: str, payload: bytes, reason: str) -> PubAck:
        """Keep a request that can never succeed on ``l1.dead.<recipe>.<run_id>``, with the
        reason."""
        self._check_connected()
        return await self._js.publish(
            subject, payload, timeout=self._timeout, headers={"L1-Reason": reason[:1000]}
        )

    async def render_request(self, request: RenderRequest, *, msg_id: str) -> PubAck:
        """Queue one step of a run; ``msg_id`` is its de-duplication id."""
        self._check_connected()
        return await self._js.publish(
            subjects.render(request.recipe, request.run_id, request.node_id),
            _encoder.encode(request),
            timeout=self._timeout,
            headers={Header.MSG_ID: msg_id},
        )
