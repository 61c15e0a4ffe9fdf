"""``/workers`` and ``/queues``: the render fleet and the queues it works from."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency

from l1.api.openapi import DEPENDENCIES, errors
from l1.api.services.fleet import Fleet, QueueState
from l1.schemas import Page
from l1.workers.heartbeat import WorkerBeat

__all__ = ["FleetController"]


class FleetController(Controller):
    """Live workers and queue depths."""

    tags = ["fleet"]

    @get("/workers", summary="List live workers", responses=errors(DEPENDENCIES))
    async def workers(self, fleet: NamedDependency[Fleet]) -> Page[WorkerBeat]:
        """Every worker whose heartbeat is fresh: host, since when, what it renders, and
        how many renders it finished and failed. Every one, in one page."""
        return Page(items=await fleet.workers())

    @get("/queues", summary="Queue depth per consumer", responses=errors(DEPENDENCIES))
    async def queues(self, fleet: NamedDependency[Fleet]) -> Page[QueueState]:
        """Each durable JetStream consumer: messages pending, awaiting acknowledgement,
        and redelivered. Every one, in one page."""
        return Page(items=await fleet.queues())
