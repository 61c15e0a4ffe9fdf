"""Dispatching a run's steps to the workers, level by level.

A step goes out once the outputs of all its inputs are known. A step whose cache id
already has an output in the cache is not rendered again, in this run or any other;
the recipe's output step is always sent (with the known output, if any), so that a
worker records provenance for this run. The API dispatches the first steps; the run
projector dispatches the next ones as steps finish; the reconciler re-sends lost ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from msgspec.structs import replace

from l1.schemas import InputRef, NamedHash, RenderRequest, Run, StepState

if TYPE_CHECKING:
    from l1.cache.index import CacheIndex
    from l1.cache.store import ContentStore
    from l1.events.publisher import Publisher

__all__ = ["Dispatcher"]


class Dispatcher:
    """Works out which steps are ready and publishes their render requests."""

    def __init__(self, *, store: ContentStore, index: CacheIndex, publisher: Publisher) -> None:
        self._store = store
        self._index = index
        self._publisher = publisher

    async def prepare(self, run: Run, *, resend: bool = False) -> tuple[Run, list[RenderRequest]]:
        """The run with cached steps filled in and ready steps marked dispatched, and the
        requests to send. With ``resend``, steps already dispatched are included again."""
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
                cached = await self._cached(step.cache_id)
                if cached and not final:
                    steps[index] = replace(step, status="cached", output_hash=cached)
                    outputs[step.node_id] = cached
                    moved = True
                    continue
                steps[index] = replace(step, status="dispatched")
                requests.append(_request(run, steps, step, outputs, final, cached))
        return replace(run, steps=steps), requests

    async def send(self, requests: list[RenderRequest], *, suffix: str = "") -> None:
        """Publish ``requests``; each is de-duplicated by run, generation and step."""
        for request in requests:
            msg_id = f"{request.run_id}.{request.generation}.{request.node_id}{suffix}"
            await self._publisher.render_request(request, msg_id=msg_id)

    async def _cached(self, cache_id: str) -> str | None:
        output = await self._index.step_output(cache_id)
        return output if output and self._store.exists(output) else None


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
    )
