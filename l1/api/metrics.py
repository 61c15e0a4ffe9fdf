"""``GET /metrics``: Prometheus text for HTTP (Litestar's middleware) and for L1 itself.

Counters and the run-duration histogram move with the lifecycle events this process
sees (:class:`l1.api.live.RunFeed`); gauges are read from Redis and JetStream when
Prometheus scrapes. Every API process counts every event, so scrape one of them (or
take the maximum across them, not the sum). Labels take bounded sets of values only, so
that a scrape does not grow with what clients do (see :class:`RecipeLabels`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.plugins.prometheus import PrometheusConfig
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from l1 import keys
from l1.api.openapi import DEPENDENCIES, errors
from l1.events.schemas import RunCancelled, RunCompleted, RunEvent, RunFailed, RunSubmitted
from l1.schemas import RunStatus
from l1.timestamps import micros
from l1.workers.metrics import RENDER_BUCKETS

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from l1.api.services.fleet import Fleet

__all__ = ["ApiMetrics", "MetricsController", "RecipeLabels", "http_metrics"]

# Cache item sizes are read this many index entries at a time.
_CHUNK = 500
# Runs remembered for the duration histogram and for counting each finish once.
_REMEMBERED = 50_000
_FINISHED = (RunCompleted, RunFailed, RunCancelled)
# Registered recipes that get a ``recipe`` label of their own (the first ones seen);
# any later one is counted as ``other``, so that a scrape stays the same size however
# many recipes are registered. Effects always have their own.
LABELLED_RECIPES = 50
OTHER = "other"
UNKNOWN = "unknown"  # a run whose submit this process did not see


def http_metrics() -> PrometheusConfig:
    """Litestar's request metrics: by route template (never by id), leaving out the
    scrapes themselves and the live pages' event streams, which stay open."""
    return PrometheusConfig(
        app_name="l1",
        prefix="l1_http",
        group_path=True,
        exclude=["^/metrics$", "^/ui/events"],
    )


class ApiMetrics:
    """L1's own metrics, in a registry of their own."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        redis: Redis,
        fleet: Fleet,
        effects: Iterable[str] = (),
    ) -> None:
        self.registry = registry
        self._redis = redis
        self._fleet = fleet
        self._labels = RecipeLabels(effects, at_most=LABELLED_RECIPES)
        self.submitted = Counter(
            "l1_runs_submitted", "Runs accepted (first submits and retries)", registry=registry
        )
        self.finished = Counter(
            "l1_runs_finished", "Runs that finished, by status", ["status"], registry=registry
        )
        self.run_seconds = Histogram(
            "l1_run_seconds",
            "From a run's start to its completion, by recipe (an effect is a one-step recipe;"
            f" recipes registered after the first {LABELLED_RECIPES} are counted as {OTHER})",
            ["recipe"],
            buckets=RENDER_BUCKETS,
            registry=registry,
        )
        self.runs = Gauge("l1_runs", "Runs, by current status", ["status"], registry=registry)
        self.cache_items = Gauge("l1_cache_items", "Items in the cache index", registry=registry)
        self.cache_bytes = Gauge("l1_cache_bytes", "Bytes of the indexed items", registry=registry)
        queue = ["stream", "consumer"]
        self.pending = Gauge(
            "l1_queue_pending", "Messages not yet delivered", queue, registry=registry
        )
        self.ack_pending = Gauge(
            "l1_queue_ack_pending",
            "Messages delivered, not yet acknowledged",
            queue,
            registry=registry,
        )
        self.redelivered = Gauge(
            "l1_queue_redelivered",
            "Messages delivered more than once, not yet acknowledged",
            queue,
            registry=registry,
        )
        self.workers = Gauge("l1_workers_live", "Workers with a fresh heartbeat", registry=registry)
        for status in RunStatus:
            if status.terminal:  # shown at 0 before the first, so that rates start at once
                self.finished.labels(status=str(status))
        # Recent runs' recipes (from their submits) and finished generations, bounded.
        self._recipes: OrderedDict[str, str] = OrderedDict()
        self._finished_runs: OrderedDict[tuple[str, int], None] = OrderedDict()

    def observe(self, event: RunEvent) -> None:
        """Count ``event`` (a listener of the run feed), from the event alone: a core
        subscription sees a duplicate that JetStream dropped, so a run's finish is
        counted once per generation."""
        if isinstance(event, RunSubmitted):
            self.submitted.inc()
            self._recipes[event.run_id] = event.run.recipe
            _trim(self._recipes)
        elif isinstance(event, _FINISHED):
            generation = (event.run_id, event.generation)
            if generation in self._finished_runs:
                return
            self._finished_runs[generation] = None
            _trim(self._finished_runs)
            self.finished.labels(status=str(event.__struct_config__.tag)).inc()
            if isinstance(event, RunCompleted) and event.started_at:
                recipe = self._labels.of(self._recipes.get(event.run_id, UNKNOWN))
                seconds = (micros(event.at) - micros(event.started_at)) / 1e6
                self.run_seconds.labels(recipe=recipe).observe(max(seconds, 0.0))

    async def refresh(self) -> None:
        """Read the gauges' values from Redis and JetStream."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for status in RunStatus:
                pipe.zcard(keys.runs_with_status(str(status)))
            pipe.zrange(keys.CACHE_ITEMS, 0, -1)
            *counts, members = await pipe.execute()
        for status, count in zip(RunStatus, counts, strict=True):
            self.runs.labels(status=str(status)).set(count)
        hashes = [m.decode() for m in cast("list[bytes]", members)]
        self.cache_items.set(len(hashes))
        self.cache_bytes.set(await self._bytes(hashes))
        for queue in await self._fleet.queues():
            labels = {"stream": queue.stream, "consumer": queue.consumer}
            self.pending.labels(**labels).set(queue.pending)
            self.ack_pending.labels(**labels).set(queue.ack_pending)
            self.redelivered.labels(**labels).set(queue.redelivered)
        self.workers.set(len(await self._fleet.workers()))

    async def _bytes(self, hashes: list[str]) -> int:
        total = 0
        for start in range(0, len(hashes), _CHUNK):
            chunk = hashes[start : start + _CHUNK]
            raws = await self._redis.mget([keys.cache_item(h) for h in chunk])
            total += sum(_sized.decode(raw).size for raw in raws if raw is not None)
        return total


class RecipeLabels:
    """The ``recipe`` label of a run: its own for the effects and for the first
    :data:`LABELLED_RECIPES` other recipes seen, ``other`` for the rest."""

    def __init__(self, effects: Iterable[str], *, at_most: int = LABELLED_RECIPES) -> None:
        self._own = frozenset(effects) | {UNKNOWN}
        self._at_most = at_most
        self._recipes: set[str] = set()

    def of(self, recipe: str) -> str:
        """The label to count a run of ``recipe`` under."""
        if recipe in self._own or recipe in self._recipes:
            return recipe
        if len(self._recipes) < self._at_most:
            self._recipes.add(recipe)
            return recipe
        return OTHER


def _trim(recent: OrderedDict[Any, Any]) -> None:
    while len(recent) > _REMEMBERED:
        recent.popitem(last=False)


class _Sized(msgspec.Struct):
    """The one field of a cache index entry the byte count needs."""

    size: int = 0


_sized = msgspec.json.Decoder(_Sized)


# Litestar adds the charset to a text/ media type itself: given here, it came twice.
PROMETHEUS_TEXT = "; ".join(
    part for part in CONTENT_TYPE_LATEST.split("; ") if not part.startswith("charset=")
)


class MetricsController(Controller):
    """Prometheus' scrape target."""

    tags = ["server"]

    @get(
        "/metrics",
        summary="Metrics in Prometheus' text format",
        include_in_schema=True,
        responses={
            200: ResponseSpec(
                str, generate_examples=False, media_type="text/plain", description="The metrics"
            ),
            **errors(DEPENDENCIES),
        },
    )
    async def metrics(self, api_metrics: NamedDependency[ApiMetrics]) -> Response[bytes]:
        """HTTP requests and latency, runs by status, submits and completions, run
        durations, queue depth and redeliveries per consumer, cache items and bytes,
        and live workers."""
        await api_metrics.refresh()
        body = generate_latest(REGISTRY) + generate_latest(api_metrics.registry)
        return Response(body, media_type=PROMETHEUS_TEXT)
