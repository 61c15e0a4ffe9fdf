"""Subscribers: project lifecycle events into Redis.

Every handler is idempotent and order-tolerant: see :mod:`l1.events.projections`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

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
    from l1.cache.references import References
    from l1.cache.store import ContentStore
    from l1.dispatch import Dispatcher
    from l1.run_store import RunStore
    from l1.schemas import Run

__all__ = ["CacheProjector", "RunProjector"]


class RunProjector:
    """Keeps run records, activities and provenance current from ``l1.runs.>``, and
    sends each run's next steps as earlier ones finish."""

    def __init__(
        self,
        *,
        runs: RunStore,
        activities: ActivityLog,
        references: References,
        index: CacheIndex,
        store: ContentStore,
        dispatcher: Dispatcher,
    ) -> None:
        self._runs = runs
        self._activities = activities
        self._references = references
        self._index = index
        self._store = store
        self._dispatcher = dispatcher

    async def handle(self, event: RunEvent) -> None:
        """Apply one event."""
        match event:
            case RunSubmitted():
                await self._runs.update(
                    event.run_id, lambda r: projections.apply_submitted(r, event)
                )
            case RunStarted():
                await self._runs.update(event.run_id, lambda r: projections.apply_started(r, event))
            case RunProgress(output_hash=str()):
                await self._step_done(event)
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

    async def _step_done(self, event: RunProgress) -> None:
        assert event.output_hash is not None
        # Held until the run finishes, so the next step finds its input.
        await self._references.hold(event.run_id, [event.output_hash])
        run = await self._runs.update(event.run_id, lambda r: projections.apply_progress(r, event))
        if run is None or run.generation != event.generation:
            return
        step = next((s for s in run.steps if s.node_id == event.node_id), None)
        if step is not None:
            await self._index.record_step(step.cache_id, event.output_hash)
        await self._send_ready(run)

    async def _send_ready(self, run: Run, *, suffix: str = "") -> None:
        prepared, requests = await self._dispatcher.prepare(run)
        if requests or prepared.steps != run.steps:
            await self._runs.update(run.run_id, lambda r: projections.merge_dispatched(r, prepared))
        await self._dispatcher.send(requests, suffix=suffix)

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
        intermediates = [h for h in run.intermediates if h != event.output_hash]
        await self._activities.record(
            Activity(
                run_id=event.run_id,
                inputs=[i.content_hash for i in provenance.inputs],
                output=event.output_hash,
                intermediates=intermediates,
                completed_at=event.at,
            )
        )
        if not self._store.exists(event.output_hash):
            # Deleted between the render and this moment: render it again rather than
            # report a completed run whose output is gone.
            again = msgspec.structs.replace(
                run,
                steps=[*run.steps[:-1], msgspec.structs.replace(run.steps[-1], status="pending")],
            )
            await self._send_ready(again, suffix=f".again.{event.event_id}")
            return
        if run.steps:
            await self._index.record_step(run.steps[-1].cache_id, event.output_hash)
        await self._runs.update(event.run_id, lambda r: projections.apply_completed(r, event))
        # Intermediates stay listed in the activity but no longer held: they can be
        # rendered again, so the deletion rules treat them as deletable.
        held = {*(i.content_hash for i in provenance.inputs), event.output_hash}
        await self._references.release(event.run_id, [h for h in intermediates if h not in held])


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
