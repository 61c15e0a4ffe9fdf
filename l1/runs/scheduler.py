"""The scheduler: which steps of a run go to the workers, and sending them.

A step goes out once the outputs of all its inputs are known. A step whose cache id
already has an output in the cache is not rendered again, in this run or any other;
the recipe's output step is always sent (with the known output, if any), so that a
worker records provenance for this run. The API sends a run's first steps, the run
projector the next ones as steps finish, the reconciler those found lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

import nats.errors
from msgspec.structs import replace
from redis.exceptions import RedisError

from l1.errors import DependencyDown
from l1.events.schemas import RunSubmitted
from l1.runs.projections import merge_dispatched
from l1.schemas import InputRef, NamedHash, RenderRequest, Run, StepState

if TYPE_CHECKING:
    from nats.js.api import PubAck

    from l1.cache.index import CacheIndex
    from l1.cache.items import Items
    from l1.events.publisher import Publisher
    from l1.runs.store import RunStore

__all__ = ["Scheduler"]

log = logging.getLogger(__name__)

# A run recorded while NATS was unreachable is sent again this often, for this long.
RESEND_EVERY = 1.0
RESEND_FOR = 120.0

# What a dependency that cannot answer this moment raises (NATS, the tier, Redis).
UNANSWERED = (nats.errors.Error, TimeoutError, DependencyDown, RedisError, OSError)


class Scheduler:
    """Works out which steps are ready and publishes their render requests."""

    def __init__(
        self, *, runs: RunStore, items: Items, index: CacheIndex, publisher: Publisher
    ) -> None:
        self._runs = runs
        self._items = items
        self._index = index
        self._publisher = publisher
        self._later: set[asyncio.Task[None]] = set()

    def plan(
        self, run: Run, cached: Mapping[str, str], *, resend: bool = False
    ) -> tuple[Run, list[RenderRequest]]:
        """The run with cached steps filled in and ready steps marked dispatched, and the
        requests to send, given ``cached`` (cache id → an output that exists). With
        ``resend``, steps already dispatched are included again."""
        steps = list(run.steps)
        outputs = dict(run.bindings)
        outputs.update({s.node_id: s.output_hash for s in steps if s.done and s.output_hash})
        requests: list[RenderRequest] = []
        moved = True
        while moved:
            moved = False
            for index, step in enumerate(steps):
                ready = all(i in outputs for i in step.inputs)
                waiting = step.status == "pending" or (resend and step.status == "dispatched")
                if step.done or not waiting or not ready or step.node_id in _names(requests):
                    continue
                final = index == len(steps) - 1
                known = cached.get(step.cache_id)
                if known and not final:
                    steps[index] = replace(step, status="cached", output_hash=known)
                    outputs[step.node_id] = known
                    moved = True
                    continue
                steps[index] = replace(step, status="dispatched")
                requests.append(_request(run, steps, step, outputs, final, known))
        return replace(run, steps=steps), requests

    async def ready(self, run: Run, *, resend: bool = False) -> tuple[Run, list[RenderRequest]]:
        """:meth:`plan` with what the step cache knows now."""
        outputs = await self._index.step_outputs([step.cache_id for step in run.steps])
        return self.plan(run, await self.existing(outputs), resend=resend)

    async def start(
        self, run: Run, recorded: Run, outputs: Mapping[str, str]
    ) -> list[RenderRequest]:
        """The first requests of ``run`` (as submitted, no step planned) now that it is
        ``recorded`` (planned as if nothing were cached) and ``outputs`` are what its
        steps made before; a plan that differs (a cached step) is recorded too.

        Never fails for want of an answer: a recorded run must be sent now, since a
        submit tried again finds it recorded and sends nothing. If the cache or Redis
        cannot answer (a cluster electing a leader), the run goes as recorded, taking
        nothing from the cache (a cached step is rendered again, which is harmless)."""
        try:
            prepared, requests = self.plan(run, await self.existing(outputs))
            if prepared.steps != recorded.steps:
                await self._runs.update(run.run_id, lambda r: _replan(r, prepared))
        except UNANSWERED as error:
            log.warning("run %s sent as recorded: the cache did not answer (%r)", run.run_id, error)
            _, requests = self.plan(run, {})
        return requests

    async def existing(self, outputs: Mapping[str, str]) -> dict[str, str]:
        """Those of ``outputs`` (cache id → output) the cache still holds."""
        held = [await self._items.contains(output) for output in outputs.values()]
        return {c: o for (c, o), there in zip(outputs.items(), held, strict=True) if there}

    async def send(self, requests: list[RenderRequest], *, copy: str = "first") -> None:
        """Publish ``requests``; each is de-duplicated by run, generation, step and copy."""
        await asyncio.gather(*self._sends(requests, copy=copy))

    async def announce(self, run: Run, requests: list[RenderRequest]) -> None:
        """Publish a newly accepted run's ``submitted`` event and its first steps."""
        # Independent publishes, in one gather: the projector tolerates either order.
        await asyncio.gather(self._publisher.event(RunSubmitted.of(run)), *self._sends(requests))

    def _sends(
        self, requests: list[RenderRequest], *, copy: str = "first"
    ) -> list[Awaitable[PubAck]]:
        return [self._publisher.render_request(r, copy=copy) for r in requests]

    def announce_later(self, run: Run, requests: list[RenderRequest]) -> None:
        """Keep trying :meth:`announce` in the background (for a run that is recorded
        but could not be sent); the reconciler finds it if this process stops first."""
        task = asyncio.create_task(self._announce_until_sent(run, requests))
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    async def _announce_until_sent(self, run: Run, requests: list[RenderRequest]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RESEND_FOR
        while loop.time() < deadline:
            await asyncio.sleep(RESEND_EVERY)
            try:
                current = await self._runs.get(run.run_id)
                if current is None or current.generation != run.generation:
                    return  # discarded, or sent again by a retry, meanwhile
                await self.announce(run, requests)
            except UNANSWERED:
                continue
            return
        log.warning(
            "run %s not sent for %.0fs; the reconciler will send it", run.run_id, RESEND_FOR
        )

    async def close(self) -> None:
        """Stop trying to send what is still waiting (the reconciler will)."""
        for task in list(self._later):
            task.cancel()
        await asyncio.gather(*self._later, return_exceptions=True)

    async def advance(self, run: Run, *, copy: str = "first") -> None:
        """Send the steps of ``run`` that became ready, then record them as dispatched.

        In that order: if sending fails, the event that called for it comes again and
        finds the steps still pending, so they are sent then (a repeat that did reach
        JetStream is dropped as a duplicate). Recorded first, they would read
        dispatched and never be sent."""
        prepared, requests = await self.ready(run)
        await self.send(requests, copy=copy)
        await self._record(run, prepared)

    async def resend_lost(
        self, run: Run, *, queued: Callable[[RenderRequest], Awaitable[bool]], copy: str
    ) -> int:
        """Send again the dispatched steps of ``run`` that ``queued`` says are no longer
        waiting for a worker (and any that became ready); returns how many."""
        prepared, requests = await self.ready(run, resend=True)
        lost = [r for r in requests if not await queued(r)]
        await self.send(lost, copy=copy)
        await self._record(run, prepared)
        return len(lost)

    async def _record(self, run: Run, prepared: Run) -> None:
        if prepared.steps != run.steps:
            await self._runs.update(run.run_id, lambda r: merge_dispatched(r, prepared))


def _replan(run: Run | None, prepared: Run) -> Run | None:
    """``run`` with the steps of ``prepared``, if nothing has moved it on since."""
    if run is None or run.generation != prepared.generation or run.status.terminal:
        return None
    if any(s.status in ("completed", "cached") for s in run.steps):
        return None
    return replace(run, steps=prepared.steps)


def _names(requests: list[RenderRequest]) -> set[str]:
    return {r.node_id for r in requests}


def _request(
    run: Run,
    steps: list[StepState],
    step: StepState,
    outputs: dict[str, str],
    final: bool,
    known_output: str | None,
) -> RenderRequest:
    effects = {s.effect: NamedHash(name=s.effect, content_hash=s.effect_hash) for s in steps}
    return RenderRequest(
        run_id=run.run_id,
        recipe=run.recipe,
        recipe_hash=run.recipe_hash,
        inputs=[InputRef(name=i, content_hash=outputs[i]) for i in step.inputs],
        output_name=run.output_name if final else step.node_id,
        requested_by=run.requested_by,
        submitted_at=run.created_at,
        generation=run.generation,
        node_id=step.node_id,
        effect=step.effect,
        effect_hash=step.effect_hash,
        params=step.params,
        final=final,
        known_output=known_output,
        run_inputs=run.inputs,
        effects=list(effects.values()),
        segmentable=step.segmentable,
        segment=step.segment,
    )
