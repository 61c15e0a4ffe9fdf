"""Reading a durable pull consumer: never more asked for than there is room for, every
message handed on once, what came after a stop handed back at once, and reading goes on
across a restart of NATS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing, suppress

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from l1.events.consumer import batches
from tests.conftest import Servers
from tests.harness import wait_for
from tests.processes import OwnServers

STREAM, DURABLE = "TEST_PULLS", "reader"


async def declare(nc: NATS) -> None:
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=STREAM, subjects=["pulls.>"]))
    await js.add_consumer(
        STREAM, ConsumerConfig(durable_name=DURABLE, ack_policy=AckPolicy.EXPLICIT, ack_wait=30)
    )


async def publish(nc: NATS, count: int, start: int = 0) -> None:
    js = nc.jetstream()
    for n in range(start, start + count):
        await js.publish(f"pulls.{n}", str(n).encode())


@pytest.fixture
async def nc(servers: Servers) -> AsyncIterator[NATS]:
    assert servers.nats_url
    connection = await nats.connect(servers.nats_url)
    js = connection.jetstream()
    with suppress(nats.js.errors.NotFoundError):
        await js.delete_stream(STREAM)
    await declare(connection)
    yield connection
    await js.delete_stream(STREAM)
    await connection.close()


async def read(nc: NATS, stop: asyncio.Event, room: int, until: int) -> list[list[Msg]]:
    """Batches read with ``room`` places free, until ``until`` messages came."""
    seen: list[list[Msg]] = []

    async def free() -> int:
        return room

    async with aclosing(
        batches(nc, stream=STREAM, durable=DURABLE, stop=stop, room=free)
    ) as pulled:
        async for batch in pulled:
            seen.append(batch)
            for msg in batch:
                await msg.ack_sync()  # confirmed, so that the consumer's counts show it
            if sum(map(len, seen)) >= until:
                break
    return seen


async def test_batches_bring_every_message_once_and_no_more_than_the_room(nc: NATS) -> None:
    await publish(nc, 50)
    seen = await asyncio.wait_for(read(nc, asyncio.Event(), room=8, until=50), timeout=30)
    assert all(len(batch) <= 8 for batch in seen)
    assert sorted(int(m.data) for batch in seen for m in batch) == list(range(50))
    info = await nc.jetstream().consumer_info(STREAM, DURABLE)
    assert info.num_pending == 0 and info.num_ack_pending == 0


async def test_messages_published_later_are_brought_as_they_come(nc: NATS) -> None:
    stop = asyncio.Event()
    reading = asyncio.create_task(read(nc, stop, room=4, until=6))
    await publish(nc, 3)
    await publish(nc, 3, start=3)
    seen = await asyncio.wait_for(reading, timeout=30)
    assert sorted(int(m.data) for batch in seen for m in batch) == list(range(6))


async def test_what_came_but_was_not_handed_on_is_handed_back_at_once(nc: NATS) -> None:
    js = nc.jetstream()
    await publish(nc, 2)

    async def room() -> int:
        return 10

    pulled = batches(nc, stream=STREAM, durable=DURABLE, stop=asyncio.Event(), room=room, wait=10)
    async with aclosing(pulled):
        handed_on = await anext(pulled)
        for msg in handed_on:
            await msg.ack()
        await publish(nc, 3, start=2)  # come on the request still open, not handed on

        async def delivered() -> bool:
            info = await js.consumer_info(STREAM, DURABLE)
            return info.num_pending == 0 and info.num_ack_pending == 3

        await wait_for(delivered)
    # Unless handed back, redelivered only after the consumer's 30 s ack wait.
    again = await js.pull_subscribe_bind(DURABLE, stream=STREAM)
    redelivered = await again.fetch(3, timeout=10)
    assert sorted(int(m.data) for m in redelivered) == [2, 3, 4]
    assert all(m.metadata.num_delivered == 2 for m in redelivered)


async def test_reading_goes_on_after_nats_restarts(own: OwnServers) -> None:
    nc = await nats.connect(own.nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        await declare(nc)
        await publish(nc, 3)
        stop = asyncio.Event()
        came: list[int] = []

        async def consume() -> None:
            async def room() -> int:
                return 16

            pulled = batches(nc, stream=STREAM, durable=DURABLE, stop=stop, room=room)
            async with aclosing(pulled) as messages:
                async for batch in messages:
                    for msg in batch:
                        await msg.ack()
                        came.append(int(msg.data))
                    if len(came) >= 6:
                        return

        reading = asyncio.create_task(consume())
        await wait_for(lambda: holds(len(came) == 3))
        await asyncio.to_thread(own.nats.stop)
        await asyncio.to_thread(own.nats.start)
        await wait_for(lambda: holds(nc.is_connected))
        await publish(nc, 3, start=3)
        await asyncio.wait_for(reading, timeout=30)
        assert sorted(came) == list(range(6))
    finally:
        await nc.close()


async def holds(condition: bool) -> bool:
    """``condition``, as :func:`wait_for` polls it."""
    return condition
