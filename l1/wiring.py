"""Wiring: the connections to NATS and Redis, and the services each process role runs.

Every L1 process starts from :func:`connected`, which connects, declares the streams
and builds what all roles share; the API's plugin, :func:`run_subscribers` and
:func:`run_worker` build their own services on top of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import nats
from prometheus_client import CollectorRegistry
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from l1.cache.blobs import BlobTier
from l1.cache.index import CacheIndex
from l1.cache.items import Items
from l1.cache.janitor import Janitor
from l1.cache.projector import CacheProjector
from l1.cache.references import References
from l1.cache.repair import IndexRepair
from l1.cache.store import ContentStore
from l1.effects import EffectRegistry, default_effects
from l1.events.metrics import SubscriberMetrics
from l1.events.publisher import Publisher
from l1.events.schemas import CACHE_DECODER, RUN_DECODER
from l1.events.streams import CACHE_PROJECTOR, READY_WITHIN, RUN_PROJECTOR, ensure_streams
from l1.events.subscribers import Subscriber, Subscribers
from l1.events.transient import patiently
from l1.liveness import keep_fresh
from l1.metrics_server import serving_metrics
from l1.redis_link import PROTOCOL, MultiplexedRedis
from l1.runs.projector import RunProjector
from l1.runs.reconciler import Reconciler
from l1.runs.scheduler import Scheduler
from l1.runs.store import RunStore
from l1.runtime import every, settle_heap
from l1.workers.heartbeat import Heartbeat
from l1.workers.metrics import WorkerMetrics
from l1.workers.processes import RenderProcesses
from l1.workers.render import Renderer
from l1.workers.service import WorkerService

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.js import JetStreamContext

    from l1.settings import Settings

__all__ = [
    "Backbone",
    "connect_nats",
    "connect_redis",
    "connected",
    "run_subscribers",
    "run_worker",
    "subscribe",
]

log = logging.getLogger(__name__)


async def connect_nats(url: str, *, name: str) -> NATS:
    """Connect to NATS (``url``: one server, or several of a cluster separated by commas)
    and keep reconnecting for as long as the process lives."""

    async def on_error(error: Exception) -> None:
        log.warning("nats: %s", error)

    return await nats.connect(
        servers=[server.strip() for server in url.split(",")],  # a cluster: any of them
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=2,
        allow_reconnect=True,
        error_cb=on_error,
    )


def connect_redis(url: str, *, reply_timeout: float = 5.0) -> Redis:
    """A Redis client whose commands share one pipelined connection
    (:class:`~l1.redis_link.MultiplexedRedis`), retried briefly on connection errors.

    Publish and subscribe take connections from a pool that blocks (up to 10 s) for a
    free one under load instead of failing, which would read as "Redis is down".
    """
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3)
    pool = BlockingConnectionPool.from_url(
        url,
        protocol=PROTOCOL,
        max_connections=128,
        timeout=10,
        socket_connect_timeout=2,
        socket_timeout=reply_timeout,
        health_check_interval=10,
        retry=retry,
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return MultiplexedRedis(url, retry=retry, timeout=reply_timeout, connect_timeout=2, pool=pool)


@dataclass(frozen=True, kw_only=True)
class Backbone:
    """The connections of one process and the services every role shares."""

    settings: Settings
    nc: NATS
    js: JetStreamContext
    items: Items
    publisher: Publisher
    effects: EffectRegistry
    redis_client: Redis | None

    @property
    def redis(self) -> Redis:
        """The Redis client (every role but the worker has one)."""
        assert self.redis_client is not None, "this process was connected without Redis"
        return self.redis_client

    async def healthy(self) -> bool:
        """True while NATS is connected and Redis (if this process uses it) answers."""
        if not self.nc.is_connected:
            return False
        if self.redis_client is None:
            return True
        try:
            return bool(await asyncio.wait_for(self.redis_client.ping(), timeout=2))
        except (RedisError, OSError, TimeoutError):
            return False

    def janitor(self) -> Janitor:
        """What scrubs this host's store and, with the blob tier on, keeps its local
        copies in step with the tier."""
        return Janitor(
            self.items,
            self.nc,
            max_bytes=self.settings.cache_max_bytes,
            scrub_bytes_per_second=self.settings.scrub_bytes_per_second,
        )

    def scheduler(self) -> Scheduler:
        """A scheduler sending steps through this process's connections."""
        return Scheduler(
            runs=RunStore(self.redis),
            items=self.items,
            index=CacheIndex(self.redis),
            publisher=self.publisher,
        )


@asynccontextmanager
async def connected(
    settings: Settings, *, role: str, redis: bool = True
) -> AsyncIterator[Backbone]:
    """Connect as ``role`` (and to Redis unless ``redis`` is false), declare the streams,
    and close everything on exit (draining NATS)."""
    assert settings.nats_url, "a NATS URL is required"
    assert settings.redis_url or not redis, "a Redis URL is required"
    async with AsyncExitStack() as stack:
        nc = await connect_nats(settings.nats_url, name=f"l1-{role}")
        stack.push_async_callback(nc.drain)
        client = None
        if redis:
            assert settings.redis_url
            client = connect_redis(settings.redis_url)
            stack.push_async_callback(client.aclose)
        js = nc.jetstream()
        await ensure_streams(js, settings)
        # How long a call rides out a NATS failover: a request answers 503 after a
        # moment; the other roles can wait as long as a claim on a render lasts.
        patience = 3.0 if role == "api" else settings.ack_wait
        tier = None
        if settings.blob_tier:
            tier = BlobTier(js, replicas=settings.replicas)
            await patiently(tier.open, within=READY_WITHIN, what="opening the blob tier")
        backbone = Backbone(
            settings=settings,
            nc=nc,
            js=js,
            items=Items(ContentStore(settings.cache_dir), tier, patience=patience),
            publisher=Publisher(nc, patience=patience),
            effects=default_effects(settings.effect_modules),
            redis_client=client,
        )
        if settings.health_file is not None:
            stop = asyncio.Event()
            beat = asyncio.create_task(keep_fresh(settings.health_file, backbone.healthy, stop))
            stack.push_async_callback(lambda: asyncio.wait_for(beat, timeout=5))
            stack.callback(stop.set)
        yield backbone


async def run_subscribers(settings: Settings, *, stop: asyncio.Event) -> None:
    """Run the run and cache projectors and the reconciler until ``stop`` is set,
    serving their metrics on ``L1_METRICS_PORT`` (when set)."""
    registry = CollectorRegistry()
    async with connected(settings, role="subscribers") as backbone:
        with serving_metrics(registry, host=settings.host, port=settings.metrics_port):
            settle_heap()
            await subscribe(backbone, stop, registry=registry)


async def subscribe(
    backbone: Backbone, stop: asyncio.Event, *, registry: CollectorRegistry | None = None
) -> None:
    """Run the projectors and the reconciler on ``backbone``'s connections until
    ``stop`` is set; their metrics go into ``registry``."""
    redis, settings = backbone.redis, backbone.settings
    scheduler = backbone.scheduler()
    projector = RunProjector(runs=RunStore(redis), items=backbone.items, scheduler=scheduler)
    subscribers = Subscribers(
        backbone.nc,
        [
            Subscriber(RUN_PROJECTOR, RUN_DECODER, projector.handle),
            Subscriber(CACHE_PROJECTOR, CACHE_DECODER, CacheProjector(CacheIndex(redis)).handle),
        ],
        metrics=None if registry is None else SubscriberMetrics(registry),
    )
    reconciler = Reconciler(
        backbone.js, runs=RunStore(redis), scheduler=scheduler, stale_after=settings.stale_after
    )
    repair = IndexRepair(
        items=backbone.items, index=CacheIndex(redis), references=References(redis)
    )
    skip_on = (RedisError, OSError, TimeoutError)
    async with asyncio.TaskGroup() as group:
        group.create_task(subscribers.run(stop))
        group.create_task(every(settings.reconcile_every, stop, reconciler.once, skip_on=skip_on))
        group.create_task(every(settings.reconcile_every, stop, repair.once, skip_on=skip_on))


async def run_worker(settings: Settings, *, concurrency: int, stop: asyncio.Event) -> None:
    """Run one worker with ``concurrency`` render slots until ``stop`` is set."""
    async with connected(settings, role="worker", redis=False) as backbone:
        items = backbone.items
        await asyncio.to_thread(items.store.sweep)  # what a killed worker left half-written
        processes = RenderProcesses(
            store=items.store,
            limits=settings.media_limits,
            memory=settings.render_memory or None,
            segment_seconds=settings.segment_seconds,
            threads=settings.render_threads,
        )
        renderer = Renderer(
            items=items, effects=backbone.effects, processes=processes, actor=settings.actor
        )
        metrics = WorkerMetrics(CollectorRegistry())
        worker = WorkerService(
            backbone.nc,
            renderer=renderer,
            publisher=backbone.publisher,
            settings=settings,
            concurrency=concurrency,
            metrics=metrics,
        )
        heartbeat = Heartbeat(
            backbone.js,
            worker=worker.name,
            beat=worker.beat,
            every=settings.heartbeat_every,
            replicas=settings.replicas,
        )
        # The heartbeat outlives the renders a stop lets finish: the worker is alive
        # until its last one is settled.
        settled = asyncio.Event()

        async def work() -> None:
            try:
                await worker.run(stop)
            finally:
                settled.set()

        with serving_metrics(metrics.registry, host=settings.host, port=settings.metrics_port):
            settle_heap()
            async with asyncio.TaskGroup() as group:
                group.create_task(backbone.janitor().run(stop))
                group.create_task(heartbeat.run(settled))
                group.create_task(work())
