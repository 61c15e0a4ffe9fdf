"""The worker process: connect, declare the streams, render until stopped."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from l1.cache.store import ContentStore
from l1.connections import connect_nats
from l1.events.publisher import Publisher
from l1.events.streams import ensure_streams
from l1.workers.effects import default_effects
from l1.workers.render import Renderer
from l1.workers.service import WorkerService

if TYPE_CHECKING:
    from l1.settings import Settings

__all__ = ["run_worker"]


async def run_worker(settings: Settings, *, concurrency: int, stop: asyncio.Event) -> None:
    """Run one worker with ``concurrency`` render slots until ``stop`` is set."""
    assert settings.nats_url, "a NATS URL is required"
    async with AsyncExitStack() as stack:
        nc = await connect_nats(settings.nats_url, name="l1-worker")
        stack.push_async_callback(nc.drain)
        js = nc.jetstream()
        await ensure_streams(js, settings)
        # Effects run off the event loop so that fetching and acking never stall.
        executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="render")
        # A render still running after the grace period was handed back: don't wait for it.
        stack.callback(executor.shutdown, wait=False, cancel_futures=True)
        renderer = Renderer(
            store=ContentStore(settings.cache_dir),
            effects=default_effects(settings.effect_modules),
            executor=executor,
            actor=settings.actor,
        )
        worker = WorkerService(
            nc,
            renderer=renderer,
            publisher=Publisher(nc),
            settings=settings,
            concurrency=concurrency,
        )
        await worker.run(stop)
