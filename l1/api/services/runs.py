"""Accepting runs: validate, derive the run id, record, and hand the render to JetStream."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import msgspec

from l1.errors import Conflict, InvalidInput, NotFound, Unprocessable
from l1.events import projections
from l1.events.schemas import RunCancelled, RunSubmitted
from l1.identifiers import is_content_hash, run_id_for
from l1.schemas import InputRef, Page, RenderRequest, Run, RunStatus, RunSubmission, RunView
from l1.timestamps import utc_now

if TYPE_CHECKING:
    from l1.api.run_waiter import RunWaiter
    from l1.api.services.plans import Planner
    from l1.cache.deletion import DeletionRules, DiscardReport
    from l1.cache.references import References
    from l1.cache.store import ContentStore
    from l1.dispatch import Dispatcher
    from l1.events.publisher import Publisher
    from l1.run_store import RunStore

__all__ = ["RunService"]


# How long a cancel waits for the run to read "cancelled" before answering.
CANCEL_WAIT = 10.0


class RunService:
    """Submits runs and reads them back."""

    def __init__(
        self,
        *,
        runs: RunStore,
        store: ContentStore,
        planner: Planner,
        dispatcher: Dispatcher,
        publisher: Publisher,
        waiter: RunWaiter,
        references: References,
        rules: DeletionRules,
    ) -> None:
        self._runs = runs
        self._store = store
        self._planner = planner
        self._dispatcher = dispatcher
        self._publisher = publisher
        self.waiter = waiter
        self._references = references
        self._rules = rules

    async def submit(self, submission: RunSubmission, *, requested_by: str) -> tuple[Run, bool]:
        """Accept ``submission``; returns the run and whether it is new.

        The same recipe over the same inputs is the same run: a repeat returns the first.
        """
        plan = await self._planner.plan(submission)
        hashes = [i.content_hash for i in plan.inputs]
        run_id = run_id_for(plan.recipe, plan.run_hash, hashes)
        run = Run(
            run_id=run_id,
            recipe=plan.recipe,
            recipe_hash=plan.recipe_hash,
            inputs=plan.inputs,
            output_name=submission.output_name or _default_output_name(plan.recipe, plan.inputs),
            created_at=utc_now(),
            requested_by=requested_by,
            bindings=plan.bindings,
            steps=plan.steps,
        )
        run, requests = await self._dispatcher.prepare(run)
        stored, created = await self._runs.create(run, holding=hashes)
        if created:
            await self._check_inputs_remain(stored, hashes)
            await self._dispatch_or_withdraw(stored, hashes, requests)
        return stored, created

    async def _dispatch_or_withdraw(
        self, run: Run, hashes: list[str], requests: list[RenderRequest]
    ) -> None:
        try:
            await self._dispatch(run, requests)
        except Exception:
            # Not sent: withdraw the run, so that the client's retry sends it afresh
            # instead of finding a run nobody will render until reconciliation.
            await self._runs.delete(run)
            await self._references.release(run.run_id, hashes)
            raise

    async def get(self, run_id: str, *, wait: float = 0.0) -> Run:
        """The run, waiting up to ``wait`` seconds for it to finish."""
        if not is_content_hash(run_id):
            raise InvalidInput(f"{run_id[:80]!r} is not a run id (64 lowercase hex characters)")
        run = await (self.waiter.wait(run_id, wait) if wait > 0 else self._runs.get(run_id))
        if run is None:
            raise NotFound(f"no run {run_id}")
        return run

    async def view(self, run_id: str, *, wait: float = 0.0) -> RunView:
        """The run with the items of it that are marked published."""
        run = await self.get(run_id, wait=wait)
        published = await self._references.published_marks(run.items)
        return RunView(**msgspec.structs.asdict(run), published=published)

    async def cancel(self, run_id: str) -> Run:
        """Stop a pending run, or ask the worker rendering it to stop."""
        run = await self.get(run_id)
        if run.status.terminal:
            raise Conflict(f"run {run_id} already finished ({run.status})")
        await self._publisher.event(
            RunCancelled(
                event_id=f"{run_id}.{run.generation}.cancelled",
                at=utc_now(),
                run_id=run_id,
                generation=run.generation,
            )
        )
        return await self.waiter.wait(run_id, CANCEL_WAIT) or run

    async def retry(self, run_id: str) -> Run:
        """Send a failed or cancelled run to the workers again, as its next generation."""
        run = await self.get(run_id)
        if run.status not in (RunStatus.FAILED, RunStatus.CANCELLED):
            raise Conflict(
                f"run {run_id} is {run.status}; only failed or cancelled runs are retried"
            )
        await self._hold_inputs(run_id, [ref.content_hash for ref in run.inputs])
        again = msgspec.structs.replace(
            run,
            status=RunStatus.PENDING,
            generation=run.generation + 1,
            started_at=None,
            completed_at=None,
            output_hash=None,
            provenance=None,
            error=None,
            progress=None,
            attempts=0,
            steps=[
                msgspec.structs.replace(s, status="pending", output_hash=None) for s in run.steps
            ],
        )
        again, requests = await self._dispatcher.prepare(again)
        await self._runs.update(run_id, lambda current: projections.apply_submitted(current, again))
        await self._dispatch(again, requests)
        return again

    async def discard(self, run_id: str, *, cancel: bool) -> DiscardReport:
        """Discard a run under the deletion rules; ``cancel`` stops an unfinished one first."""
        run = await self.get(run_id)
        if not run.status.terminal:
            if not cancel:
                raise Conflict(
                    f"run {run_id} is {run.status}; cancel it first or discard with ?cancel=true"
                )
            run = await self.cancel(run_id)
        return await self._rules.discard(run)

    async def page(self, *, limit: int, cursor: str | None, status: RunStatus | None) -> Page[Run]:
        """Runs, newest first."""
        return await self._runs.page(limit=limit, cursor=cursor, status=status)

    async def _announce(self, run: Run) -> None:
        await self._publisher.event(
            RunSubmitted(
                event_id=f"{run.run_id}.{run.generation}.submitted",
                at=utc_now(),
                run_id=run.run_id,
                generation=run.generation,
                run=run,
            )
        )

    async def _dispatch(self, run: Run, requests: list[RenderRequest]) -> None:
        # Independent publishes: the projector tolerates either order.
        await asyncio.gather(self._announce(run), self._dispatcher.send(requests))

    async def _hold_inputs(self, run_id: str, hashes: list[str]) -> None:
        deleting = await self._references.hold(run_id, hashes)
        if deleting is not None:
            raise Conflict(f"input {deleting} is being deleted; upload it again to use it")
        if missing := self._first_missing(hashes):
            raise Unprocessable(f"input {missing} is no longer in the cache")

    async def _check_inputs_remain(self, run: Run, hashes: list[str]) -> None:
        # Held first, then looked at: a deletion either saw the hold and refused, or
        # finished before it, in which case the file is gone and the run is withdrawn.
        if missing := self._first_missing(hashes):
            await self._runs.delete(run)
            await self._references.release(run.run_id, hashes)
            raise Unprocessable(f"input {missing} is not in the cache; import or upload it first")

    def _first_missing(self, hashes: list[str]) -> str | None:
        return next((h for h in hashes if not self._store.exists(h)), None)


def _default_output_name(recipe: str, inputs: list[InputRef]) -> str:
    names = "-".join(i.name if len(i.name) < 64 else i.name[:12] for i in inputs)
    return f"{recipe}-{names}"[:200]
