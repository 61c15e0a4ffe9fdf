"""Subscribers: project lifecycle events into Redis.

Every handler is idempotent and order-tolerant: see :mod:`l1.events.projections`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from l1.cache.activities import Activity
from l1.cache.index import CacheItem
from l1.events import projections
from l1.events.schemas import (
    CacheDeleted,
    CacheEvent,
    CacheStored,
    RunCancelled,
    RunCompleted,
    RunDiscarded,
    RunEvent,
    RunFailed,
    RunProgress,
    RunStarted,
    RunSubmitted,
)
from l1.schemas import RunStatus

if TYPE_CHECKING:
    from l1.cache.activities import ActivityLog
    from l1.cache.index import CacheIndex
    from l1.cache.store import ContentStore
    from l1.events.publisher import Publisher
    from l1.run_store import RunStore

__all__ = ["CacheProjector", "RunProjector"]


class RunProjector:
    """Keeps run records, activities and provenance current from ``l1.runs.>``."""

    def __init__(
        self,
        *,
        runs: RunStore,
        activities: ActivityLog,
        index: CacheIndex,
        store: ContentStore,
        publisher: Publisher,
    ) -> None:
        self._runs = runs
        self._activities = activities
        self._index = index
        self._store = store
        self._publisher = publisher

    async def handle(self, event: RunEvent) -> None:
        """Apply one event."""
        match event:
            case RunSubmitted():
                await self._runs.update(
                    event.run_id, lambda r: projections.apply_submitted(r, event)
                )
            case RunStarted():
                await self._runs.update(event.run_id, lambda r: projections.apply_started(r, event))
            case RunProgress():
                await self._runs.update(
                    event.run_id, lambda r: projections.apply_progress(r, event)
                )
            case RunCompleted():
                await self._completed(event)
            case RunFailed():
                await self._runs.update(event.run_id, lambda r: projections.apply_failed(r, event))
            case RunCancelled():
                await self._runs.update(
                    event.run_id, lambda r: projections.apply_cancelled(r, event)
                )
            case RunDiscarded():
                pass  # the discard itself removed the run; nothing is left to project

    async def _completed(self, event: RunCompleted) -> None:
        run = await self._runs.get(event.run_id)
        if run is None or event.generation < run.generation:
            return  # discarded, or retried since: this render no longer counts
        if run.status.terminal and run.status is not RunStatus.COMPLETED:
            return  # cancelled or failed first: the output stays an orphan
        provenance = event.provenance
        await self._index.record_provenance(provenance)
        # The activity comes first: once the run reads "completed", its items are held.
        # Raises ItemBeingDeleted while one is being deleted; the event then comes back.
        await self._activities.record(
            Activity(
                run_id=event.run_id,
                inputs=[i.content_hash for i in provenance.inputs],
                output=event.output_hash,
                completed_at=event.at,
            )
        )
        if not self._store.exists(event.output_hash):
            # Deleted between the render and this moment: render it again rather than
            # report a completed run whose output is gone.
            await self._publisher.render_request(
                run.render_request(), msg_id=f"{run.run_id}.rerender.{event.event_id}"
            )
            return
        await self._runs.update(event.run_id, lambda r: projections.apply_completed(r, event))


class CacheProjector:
    """Keeps the cache index current from ``l1.cache.>``."""

    def __init__(self, index: CacheIndex) -> None:
        self._index = index

    async def handle(self, event: CacheEvent) -> None:
        """Apply one event."""
        match event:
            case CacheStored():
                await self._index.record_stored(
                    CacheItem(
                        content_hash=event.content_hash,
                        size=event.size,
                        content_type=event.content_type,
                        stored_at=event.at,
                    )
                )
            case CacheDeleted():
                await self._index.record_deleted(event.content_hash)
