"""The subscriber process: project events into Redis until stopped."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from l1.cache.store import ContentStore
from l1.connections import connect_nats, connect_redis
from l1.events.service import SubscriberService
from l1.events.streams import ensure_streams

if TYPE_CHECKING:
    import asyncio

    from l1.settings import Settings

__all__ = ["run_subscribers"]


async def run_subscribers(settings: Settings, *, stop: asyncio.Event) -> None:
    """Run the run and cache projectors until ``stop`` is set."""
    assert settings.nats_url and settings.redis_url, "NATS and Redis URLs are required"
    async with AsyncExitStack() as stack:
        nc = await connect_nats(settings.nats_url, name="l1-subscribers")
        stack.push_async_callback(nc.drain)
        redis = connect_redis(settings.redis_url)
        stack.push_async_callback(redis.aclose)
        js = nc.jetstream()
        await ensure_streams(js, settings)
        store = ContentStore(settings.cache_dir)
        await SubscriberService.for_redis(nc, redis, store, settings).run(stop)
