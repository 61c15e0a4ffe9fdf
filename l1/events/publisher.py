"""Publishing events and render requests to JetStream, each with a de-duplication id."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from nats.js.api import Header
from nats.js.errors import APIError

from l1.errors import DependencyDown
from l1.events import subjects
from l1.events.schemas import run_message_id
from l1.events.transient import patiently
from l1.identifiers import sha3_hex

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.js.api import PubAck

    from l1.events.schemas import Event
    from l1.schemas import RenderRequest

__all__ = ["IN_PROCESS", "Publisher"]

# JetStream's answer to a message whose de-duplication id it is storing this moment
# ("duplicate message id is in process"); it comes to repeats sent during a failover.
IN_PROCESS = 10158

_encoder = msgspec.json.Encoder()


class Publisher:
    """Publishes to L1's streams and waits for JetStream to confirm each message."""

    def __init__(self, nc: NATS, *, timeout: float = 5.0, patience: float = 3.0) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._timeout = timeout
        self._patience = patience  # how long a publish rides out a failover (transient)

    def require_connected(self) -> None:
        """:class:`DependencyDown` unless NATS is connected right now (fail at once
        rather than buffer while disconnected and time out later)."""
        if not self._nc.is_connected:
            raise DependencyDown("NATS is unreachable; try again when it is back")

    async def event(self, event: Event) -> PubAck:
        """Publish a lifecycle event on its subject; ``event_id`` is its de-duplication id."""
        return await self._publish(
            event.subject, _encoder.encode(event), {Header.MSG_ID: event.event_id}
        )

    async def dead_letter(self, subject: str, payload: bytes, reason: str) -> PubAck:
        """Keep a request that can never succeed on ``l1.dead.<recipe>.<run_id>``, with the
        reason."""
        headers = {Header.MSG_ID: f"dead:{sha3_hex(payload)}", "L1-Reason": reason[:1000]}
        return await self._publish(subject, payload, headers)

    async def render_request(self, request: RenderRequest, *, copy: str = "first") -> PubAck:
        """Queue one step of a run. A request sent again (found lost) is another
        ``copy``, so that JetStream does not take it for the first one."""
        msg_id = run_message_id(
            "render", request, node_id=request.node_id, effect=request.effect, copy=copy
        )
        return await self._publish(
            subjects.render(request.recipe, request.run_id, request.node_id),
            _encoder.encode(request),
            {Header.MSG_ID: msg_id},
        )

    async def _publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> PubAck:
        """Publish and wait for JetStream's confirmation, riding out a failover (the
        de-duplication id makes a repeat harmless)."""

        async def once() -> PubAck:
            self.require_connected()
            try:
                return await self._js.publish(
                    subject, payload, timeout=self._timeout, headers=headers
                )
            except APIError as error:
                if error.err_code != IN_PROCESS:
                    raise
                # A repeat of a publish whose ack was lost, while the first is still
                # being stored: a later repeat learns its outcome (as a duplicate).
                raise DependencyDown(f"JetStream is still storing {subject}") from error

        return await patiently(once, within=self._patience, what=f"publishing on {subject}")
