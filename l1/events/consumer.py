"""Reading a durable pull consumer: keep as many messages asked for as there is room for,
hand on what has come, and stop when told. The worker and the subscribers both read their
consumers so.

Pull requests wait on the server (for ``wait`` seconds) and are topped up as messages
come and room frees, rather than one ``fetch`` per batch: a fetch costs a request, a
"no messages" reply and a timed wait per message, several times per run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TYPE_CHECKING

import nats.errors
from nats.js.api import DEFAULT_PREFIX

from l1.runtime import sleep_unless

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.aio.msg import Msg

__all__ = ["batches", "quietly"]

log = logging.getLogger(__name__)

RETRY_DELAY = 1.0
# Past a request's expiry by this much, what it has not brought is taken as never coming
# (the request was dropped: a server restarted, a leader changed, this client reconnected).
GRACE = 0.5


class _Pulls:
    """What was asked for and has not come, and what has come and is not handed on."""

    def __init__(self, wait: float) -> None:
        self.wait = wait
        self.came: list[Msg] = []
        self.arrived = asyncio.Event()
        self.asked = 0
        self.lapse = 0.0  # loop time by which every request sent has expired

    async def received(self, msg: Msg) -> None:
        """Take a message, or a status that ends a request (expired: 408; dropped: 409)."""
        status = msg.headers.get("Status") if msg.headers else None
        if status is None:
            self.asked = max(0, self.asked - 1)
            self.came.append(msg)
        elif status in ("408", "409"):
            left = msg.headers.get("Nats-Pending-Messages") if msg.headers else None
            self.asked = max(0, self.asked - int(left)) if left else 0
        self.arrived.set()

    def request(self, room: int) -> bytes | None:
        """The pull request to send for ``room`` free places, if one is due: when less
        than half of them is already asked for."""
        loop_time = asyncio.get_running_loop().time()
        if loop_time > self.lapse:
            self.asked = 0
        wanted = room - self.asked
        if wanted <= 0 or self.asked > room // 2:
            return None
        self.asked += wanted
        self.lapse = loop_time + self.wait + GRACE
        return json.dumps({"batch": wanted, "expires": int(self.wait * 1e9)}).encode()

    async def arrival(self) -> None:
        """Until something comes, or every request has lapsed."""
        if not self.came:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(self.lapse):
                    await self.arrived.wait()
        self.arrived.clear()

    def take(self) -> list[Msg]:
        came, self.came = self.came, []
        return came


async def batches(
    nc: NATS,
    *,
    stream: str,
    durable: str,
    stop: asyncio.Event,
    room: Callable[[], Awaitable[int]],
    wait: float = 0.5,
) -> AsyncGenerator[list[Msg], None]:
    """Batches of messages from the durable consumer ``durable`` of ``stream`` until
    ``stop`` is set; no more is asked for than ``room()`` says can be taken (it waits
    until that is at least one). What came and was not handed on by then is handed back
    to the server (nak).

    Use it under :func:`contextlib.aclosing`, so that the subscription ends with the loop.
    """
    pulls = _Pulls(wait)
    inbox = nc.new_inbox()
    subject = f"{DEFAULT_PREFIX}.CONSUMER.MSG.NEXT.{stream}.{durable}"
    subscription = await nc.subscribe(inbox, cb=pulls.received)
    waking = asyncio.ensure_future(stop.wait())
    waking.add_done_callback(lambda _: pulls.arrived.set())
    try:
        while not stop.is_set():
            if not pulls.came and (request := pulls.request(await room())) is not None:
                try:
                    await nc.publish(subject, request, reply=inbox)
                except (nats.errors.ConnectionClosedError, nats.errors.NoServersError):
                    return
                except nats.errors.Error as error:
                    log.warning("%s: pull request failed: %s", durable, error)
                    await sleep_unless(stop, RETRY_DELAY)
                    continue
            await pulls.arrival()
            if pulls.came and not stop.is_set():
                yield pulls.take()
    finally:
        waking.cancel()
        # Without the inbox's interest the server drops the requests still open.
        await quietly(subscription.unsubscribe())
        for msg in pulls.take():
            await quietly(msg.nak())


async def quietly(action: Awaitable[object]) -> None:
    """Await ``action``; if NATS cannot be reached, log it and go on."""
    try:
        await action
    except (nats.errors.Error, TimeoutError) as error:
        log.warning("could not reach NATS: %s", error)
