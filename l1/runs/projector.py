"""The run projector: keeps run records, activities and provenance current from
``l1.runs.>``, and has the scheduler send each run's next steps as earlier ones finish.

Events come a fetched batch at a time. The runs they are about are read in one round
trip; each run's events are applied in order by the pure projections of
:mod:`l1.runs.projections`; and every changed run is written back, with what its
events change alongside (activity, references, provenance, the step cache), in one
round trip of compare-and-set scripts. A run another writer moved meanwhile is read and
done again; a run whose items are being deleted is handed back to come again later.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from msgspec.structs import replace

from l1.cache.activities import Activity, ActivityLog
from l1.cache.index import CacheIndex
from l1.events.schemas import (
    RunCancelled,
    RunCompleted,
    RunDiscarded,
    RunEvent,
    RunFailed,
    RunProgress,
    RunSplit,
    RunStarted,
    RunSubmitted,
)
from l1.runs import projections
from l1.runs.store import Change, decode, stamped
from l1.schemas import Run, RunStatus

if TYPE_CHECKING:
    from l1.cache.items import Items
    from l1.runs.scheduler import Scheduler
    from l1.runs.store import RunStore

__all__ = ["RunProjector"]

# How often a run another writer keeps moving is read and done again in one batch.
ATTEMPTS = 5


@dataclass
class _Plan:
    """What one run's events in a batch change, and what is to be done once written."""

    run: Run | None
    change: Change | None = None
    advance: bool = False  # a step finished: send the steps it unblocks
    again: str | None = None  # the output went missing: render it again (this copy)
    hold: list[str] = field(default_factory=list)
    release: list[str] = field(default_factory=list)
    values: dict[str, bytes] = field(default_factory=dict)
    first_values: dict[str, bytes] = field(default_factory=dict)
    scores: dict[str, tuple[str, int]] = field(default_factory=dict)


class RunProjector:
    """Applies run events to Redis, a batch at a time."""

    def __init__(self, *, runs: RunStore, items: Items, scheduler: Scheduler) -> None:
        self._runs = runs
        self._items = items
        self._scheduler = scheduler

    async def handle(self, events: list[RunEvent]) -> list[bool]:
        """Apply ``events`` (a fetched batch, in stream order); for each, True when it is
        applied and False when it must come again later."""
        by_run: dict[str, list[int]] = defaultdict(list)
        for index, event in enumerate(events):
            by_run[event.run_id].append(index)
        pending = dict(by_run)
        applied: set[str] = set()
        outputs = {e.output_hash for e in events if isinstance(e, RunCompleted)}
        present = {h for h in outputs if await self._items.contains(h)}
        for _ in range(ATTEMPTS):
            raws = await self._runs.read(list(pending))
            plans = {
                run_id: self._plan(raws[run_id], [events[i] for i in indexes], present)
                for run_id, indexes in pending.items()
            }
            written = await self._runs.write([p.change for p in plans.values() if p.change])
            outcomes = iter(written)
            moved: dict[str, list[int]] = {}
            for run_id, plan in plans.items():
                outcome = next(outcomes) if plan.change else None
                if outcome == "moved":
                    moved[run_id] = pending[run_id]
                elif outcome is None:
                    applied.add(run_id)
                    await self._follow(plan)
            pending = moved
            if not pending:
                break
        return [event.run_id in applied for event in events]

    def _plan(self, raw: bytes | None, events: list[RunEvent], present: set[str]) -> _Plan:
        current = None if raw is None else decode(raw)
        plan = _Plan(run=current)
        for event in events:
            match event:
                case RunProgress(output_hash=str()):
                    self._step_done(plan, event)
                case RunProgress():
                    _apply(plan, projections.apply_progress(plan.run, event))
                case RunStarted():
                    _apply(plan, projections.apply_started(plan.run, event))
                case RunSplit():
                    if (after := projections.apply_split(plan.run, event)) is not None:
                        plan.run = after
                        plan.advance = True  # its first parts are ready
                case RunCompleted():
                    self._completed(plan, event, event.output_hash in present)
                case RunFailed():
                    _apply(plan, projections.apply_failed(plan.run, event))
                case RunCancelled():
                    _apply(plan, projections.apply_cancelled(plan.run, event))
                case RunSubmitted():
                    # The API recorded it already: this changes nothing then.
                    _apply(plan, projections.apply_submitted(plan.run, event))
                case RunDiscarded():
                    pass  # the discard itself removed the run; nothing is left
        if plan.run is not None and plan.run != current:
            plan.change = Change(
                before=raw,
                after=stamped(plan.run),
                hold=plan.hold,
                release=[h for h in plan.release if h not in plan.hold],
                values=plan.values,
                first_values=plan.first_values,
                scores=plan.scores,
            )
        return plan

    def _step_done(self, plan: _Plan, event: RunProgress) -> None:
        assert event.output_hash is not None
        after = projections.apply_progress(plan.run, event)
        if after is None or after.generation != event.generation:
            return
        plan.run = after
        # Held until the run finishes, so the next step finds its input.
        plan.hold.append(event.output_hash)
        step = next((s for s in after.steps if s.node_id == event.node_id), None)
        if step is not None:
            key, value = CacheIndex.step_entry(step.cache_id, event.output_hash)
            plan.values[key] = value
        plan.advance = True

    def _completed(self, plan: _Plan, event: RunCompleted, output_present: bool) -> None:
        run = plan.run
        if run is None or event.generation < run.generation:
            return  # discarded, or retried since: this render no longer counts
        if run.status.terminal and run.status is not RunStatus.COMPLETED:
            return  # cancelled or failed first: the output stays an orphan
        if not output_present:
            # Deleted between the render and now: render it again rather than report a
            # completed run whose output is gone.
            plan.again = event.event_id
            return
        after = projections.apply_completed(run, event)
        if after is None:
            return
        provenance = event.provenance
        inputs = [i.content_hash for i in provenance.inputs]
        intermediates = [h for h in run.intermediates if h != event.output_hash]
        activity = Activity(
            run_id=event.run_id,
            inputs=inputs,
            output=event.output_hash,
            intermediates=intermediates,
            completed_at=event.at,
        )
        # Recorded with the run, in one step: once it reads "completed", its items are held.
        key, value, (index, member) = ActivityLog.entry(activity)
        plan.values[key] = value
        plan.scores[index] = member
        plan.hold.extend(activity.held)
        key, value = CacheIndex.provenance_entry(provenance)
        plan.first_values[key] = value
        if run.steps:
            key, value = CacheIndex.step_entry(run.steps[-1].cache_id, event.output_hash)
            plan.values[key] = value
        # Intermediates stay listed in the activity but no longer held: they can be
        # rendered again, so the deletion rules treat them as deletable.
        plan.release.extend(intermediates)
        plan.run = after
        plan.advance = False

    async def _follow(self, plan: _Plan) -> None:
        run = plan.run
        if run is None:
            return
        if plan.again is not None and not run.status.terminal:
            last = replace(run.steps[-1], status="pending")
            again = replace(run, steps=[*run.steps[:-1], last])
            await self._scheduler.advance(again, copy=f"again-{plan.again}")
        elif plan.advance and not run.status.terminal:
            await self._scheduler.advance(run)


def _apply(plan: _Plan, after: Run | None) -> None:
    if after is not None:
        plan.run = after
