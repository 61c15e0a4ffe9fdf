"""Accepting runs: validate, derive the run id, record, and hand the render to JetStream."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec
import nats.errors

from l1.errors import Conflict, DependencyDown, NotFound, Unprocessable
from l1.events.schemas import RunCancelled
from l1.identifiers import run_id_for
from l1.runs.segments import JOIN
from l1.runs.store import ATTEMPTS, Change, decode, stamped
from l1.schemas import (
    InputRef,
    Page,
    RenderRequest,
    Run,
    RunStatus,
    RunSubmission,
    RunView,
    SegmentView,
    StepState,
)
from l1.timestamps import utc_now
from l1.timing import Laps

if TYPE_CHECKING:
    from l1.api.lookups import Lookups
    from l1.api.run_waiter import RunWaiter
    from l1.api.services.deletion import DeletionRules, DiscardReport
    from l1.cache.items import Items
    from l1.cache.references import References
    from l1.events.publisher import Publisher
    from l1.runs.planner import Planner
    from l1.runs.scheduler import Scheduler
    from l1.runs.store import RunAction, RunStore

__all__ = ["NO_PREVIEW", "RunService", "preview_hash", "segment_views"]

log = logging.getLogger(__name__)

_encoder = msgspec.json.Encoder()


# How long a cancel waits for the run to read "cancelled" before answering.
CANCEL_WAIT = 10.0
NO_PREVIEW = "no preview yet: the first part is not rendered"
# In a stored run's JSON only when one of its steps is a part of a split step.
_A_PART = b'"segment":{'


class RunService:
    """Submits runs and reads them back."""

    def __init__(
        self,
        *,
        runs: RunStore,
        items: Items,
        planner: Planner,
        scheduler: Scheduler,
        publisher: Publisher,
        waiter: RunWaiter,
        references: References,
        rules: DeletionRules,
        lookups: Lookups,
    ) -> None:
        self._runs = runs
        self._items = items
        self._planner = planner
        self._scheduler = scheduler
        self._publisher = publisher
        self.waiter = waiter
        self._references = references
        self._rules = rules
        self._lookups = lookups

    async def submit(
        self, submission: RunSubmission, *, requested_by: str, laps: Laps | None = None
    ) -> tuple[Run, bool]:
        """Accept ``submission``; returns the run and whether it is new. ``laps`` times
        the stages: plan, record, send.

        Inputs may be content hashes, unique prefixes of them, or asset names. The same
        recipe over the same inputs is the same run: a repeat returns the first.
        """
        laps = laps or Laps()
        plan = await self._planner.plan(await self._resolved(submission))
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
        # Recorded as if no step were cached; the one round trip that records it says
        # what its steps made before, and the plan is mended if that changes it.
        planned, _ = self._scheduler.plan(run, {})
        laps.lap("plan")
        # Either the run is recorded and the answer is 2xx, or nothing is recorded and
        # the answer is 503: with NATS down, refuse before recording anything.
        self._publisher.require_connected()
        outcome = await self._runs.create(planned, holding=hashes)
        laps.lap("record")
        if outcome.created:
            await self._check_inputs_remain(planned, hashes)
            requests = await self._scheduler.start(run, planned, outcome.outputs)
            await self._dispatch(planned, requests)
            laps.lap("send")
        return outcome.run, outcome.created

    async def get(self, run_id: str, *, wait: float = 0.0) -> Run:
        """The run (``run_id`` may be a unique prefix), waiting up to ``wait`` seconds
        for it to finish."""
        run_id = await self._lookups.run_id(run_id)
        run = await (self.waiter.wait(run_id, wait) if wait > 0 else self._runs.get(run_id))
        if run is None:
            raise NotFound(f"no run {run_id}")
        return run

    async def view(self, run_id: str, *, wait: float = 0.0) -> bytes:
        """The run with the items of it that are marked published, as JSON: straight
        from the store when nothing is marked published (the usual case)."""
        run_id = await self._lookups.run_id(run_id)
        if wait <= 0 and not await self._references.any_published():
            raw = await self._runs.get_raw(run_id)
            if raw is None:
                raise NotFound(f"no run {run_id}")
            if _A_PART not in raw:  # nothing to add but empty lists: no decoding
                return raw[:-1] + b',"published":[],"segments":{}}'
            return _view(decode(raw), published=[])
        run = await self.get(run_id, wait=wait)
        return _view(run, published=await self._references.published_marks(run.items))

    async def preview(self, run_id: str) -> str:
        """The content hash ``GET /runs/{run_id}/preview`` serves (:func:`preview_hash`);
        :class:`NotFound` while there is none."""
        found = preview_hash(await self.get(run_id))
        if found is None:
            raise NotFound(NO_PREVIEW)
        return found

    async def cancel(self, run_id: str) -> Run:
        """Stop a pending run, or ask the worker rendering it to stop. Of many cancels of
        one generation, one is sent and answered; the others are refused (409)."""
        run_id = await self._lookups.run_id(run_id)
        self._publisher.require_connected()
        run = await self._runs.ask_cancel(run_id, check=_unfinished)
        try:
            await self._publisher.event(RunCancelled.of(run))
        except BaseException:
            await self._runs.withdraw_cancel(run)  # not sent: it may be asked again
            raise
        return await self.waiter.wait(run.run_id, CANCEL_WAIT) or run

    async def retry(self, run_id: str) -> Run:
        """Send a failed or cancelled run to the workers again, as its next generation.
        Of many retries at once, one is (202); the others are refused (409), as is a
        retry while the run is being discarded or published."""
        run_id = await self._lookups.run_id(run_id)
        seen: int | None = None
        for _ in range(ATTEMPTS):
            raw = await self._runs.get_raw(run_id)
            if raw is None:
                raise NotFound(f"no run {run_id}")
            run = decode(raw)
            seen = run.generation if seen is None else seen
            _require_retriable(run, seen)
            if (again := await self._send_again(raw, run)) is not None:
                return again
        raise Conflict(f"run {run_id} keeps changing; try again")

    async def _send_again(self, raw: bytes, run: Run) -> Run | None:
        """Record and send the next generation of ``run`` (stored as ``raw``); None when
        the stored record moved meanwhile (nothing recorded)."""
        self._publisher.require_connected()
        inputs = [ref.content_hash for ref in run.inputs]
        if missing := await self._first_missing(inputs):
            raise Unprocessable(f"input {missing} is no longer in the cache")
        again, requests = await self._scheduler.ready(_next_generation(run))
        again = stamped(again)
        # The API records the next generation itself, as it records a new run, so that
        # the check and the change are one script (one retry wins, whatever else is
        # asked at once) and a read after the 202 sees the new generation. Its
        # ``submitted`` event then changes nothing in the projection.
        if not await self._runs.write_exclusive(Change(before=raw, after=again, hold=inputs)):
            return None
        await self._dispatch(again, requests)
        return again

    async def discard(self, run_id: str, *, cancel: bool) -> DiscardReport:
        """Discard a run under the deletion rules; ``cancel`` stops an unfinished one
        first. One of many discards at once does it; the others are refused (409), and
        a discard of a run gone already is 404."""
        run = await self.get(run_id)
        if not run.status.terminal:
            if not cancel:
                raise Conflict(
                    f"run {run.run_id} is {run.status}; cancel it first or discard with "
                    "?cancel=true"
                )
            run = await self._stopped(run)
        return await self._rules.discard(run)

    def claimed(
        self, run_id: str, action: RunAction, *, check: Callable[[Run], None]
    ) -> contextlib.AbstractAsyncContextManager[Run]:
        """Hold the run (a full id) for ``action``: see :meth:`RunStore.claimed`."""
        return self._runs.claimed(run_id, action, check=check)

    async def page(self, *, limit: int, cursor: str | None, status: RunStatus | None) -> Page[Run]:
        """Runs, newest first."""
        return await self._runs.page(limit=limit, cursor=cursor, status=status)

    async def _resolved(self, submission: RunSubmission) -> RunSubmission:
        """``submission`` with each input given as a hash prefix replaced by the full hash."""
        given, lookups = submission.inputs, self._lookups
        if isinstance(given, dict):
            named = {name: await lookups.input_hash(value) for name, value in given.items()}
            return msgspec.structs.replace(submission, inputs=named)
        inputs = [await lookups.input_hash(value) for value in given]
        return msgspec.structs.replace(submission, inputs=inputs)

    async def _dispatch(self, run: Run, requests: list[RenderRequest]) -> None:
        """Announce the run and send its steps; once it is recorded, a failure here
        (NATS gone meanwhile) does not undo it: the sends are tried again shortly."""
        try:
            await self._scheduler.announce(run, requests)
        except (nats.errors.Error, TimeoutError, DependencyDown) as error:
            log.warning(
                "run %s recorded but not yet sent (%s); sending it later", run.run_id, error
            )
            self._scheduler.announce_later(run, requests)

    async def _stopped(self, run: Run) -> Run:
        """``run`` once it has stopped, asking it to stop unless that was asked already."""
        # Refused when another request is cancelling it, or it finished meanwhile.
        with contextlib.suppress(Conflict):
            await self.cancel(run.run_id)
        return await self.waiter.wait(run.run_id, CANCEL_WAIT) or await self.get(run.run_id)

    async def _check_inputs_remain(self, run: Run, hashes: list[str]) -> None:
        # Held first, then looked at: a deletion either saw the hold and refused, or
        # finished before it, in which case the file is gone and the run is withdrawn.
        try:
            missing = await self._first_missing(hashes)
        except (nats.errors.Error, TimeoutError, DependencyDown) as error:
            # The blob tier cannot answer (electing a leader). The run is recorded, so
            # it is sent all the same: a submit tried again would find it recorded and
            # send nothing. A worker that cannot find an input fails the run, naming it.
            log.warning("run %s: inputs not checked (%r); sending it", run.run_id, error)
            return
        if missing:
            await self._runs.delete(run)
            await self._references.release(run.run_id, hashes)
            raise Unprocessable(f"input {missing} is not in the cache; import or upload it first")

    async def _first_missing(self, hashes: list[str]) -> str | None:
        for content_hash in hashes:
            if not await self._items.contains(content_hash):
                return content_hash
        return None


def segment_views(steps: list[StepState]) -> dict[str, list[SegmentView]]:
    """The parts of each step split by time, keyed by the step's node id, in order."""
    found: dict[str, list[SegmentView]] = {}
    for step in steps:
        span = step.segment
        if span is None:
            continue
        found.setdefault(span.of_node, []).append(
            SegmentView(
                index=span.index,
                start=span.start,
                end=span.end,
                frames=span.frames,
                status=step.status,
                worker=step.worker,
                attempts=step.attempts,
                output_hash=step.output_hash,
            )
        )
    return {node: sorted(views, key=lambda v: v.index) for node, views in found.items()}


def preview_hash(run: Run) -> str | None:
    """The run's output once completed; before that, the first part of the last split
    step of its chain (the one the join takes) once rendered; else None."""
    if run.status is RunStatus.COMPLETED and run.output_hash:
        return run.output_hash
    joined = {node for step in run.steps if step.effect == JOIN for node in step.inputs}
    firsts = [
        step
        for step in run.steps
        if step.segment is not None and step.segment.index == 0 and step.node_id in joined
    ]
    if not firsts or not firsts[-1].done:
        return None
    return firsts[-1].output_hash


def _view(run: Run, *, published: list[str]) -> bytes:
    fields = msgspec.structs.asdict(run)
    return _encoder.encode(
        RunView(**fields, published=published, segments=segment_views(run.steps))
    )


def _unfinished(run: Run) -> None:
    if run.status.terminal:
        raise Conflict(f"run {run.run_id} already finished ({run.status})")


def _require_retriable(run: Run, seen: int) -> None:
    """Refuse a retry of ``run`` (first read at generation ``seen``) unless it failed or
    was cancelled and no other retry came first."""
    if run.generation > seen:
        raise Conflict(f"run {run.run_id} was retried by another request")
    if run.status not in (RunStatus.FAILED, RunStatus.CANCELLED):
        raise Conflict(
            f"run {run.run_id} is {run.status}; only failed or cancelled runs are retried"
        )


def _next_generation(run: Run) -> Run:
    """``run`` as its next generation, sent afresh."""
    return msgspec.structs.replace(
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
            msgspec.structs.replace(s, status="pending", output_hash=None, worker=None, attempts=0)
            for s in run.steps
        ],
    )


def _default_output_name(recipe: str, inputs: list[InputRef]) -> str:
    names = "-".join(i.name if len(i.name) < 64 else i.name[:12] for i in inputs)
    return f"{recipe}-{names}"[:200]
