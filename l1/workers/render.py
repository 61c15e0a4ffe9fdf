"""Rendering one request: find the inputs in the cache, render in a process of its own
(or, for an effect that only passes files along, right here), store the output, and
describe how it was made."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from l1.effects import RenderContext
from l1.errors import L1Error
from l1.runs.segments import JOIN
from l1.schemas import NamedHash, Provenance, SegmentPlan, StoredItem
from l1.timestamps import utc_now
from l1.workers.infrastructure import infrastructure
from l1.workers.processes import RenderRefused

if TYPE_CHECKING:
    from l1.cache.items import Items
    from l1.effects import Effect, EffectRegistry, Progress
    from l1.schemas import RenderRequest
    from l1.workers.processes import RenderProcesses

__all__ = ["PermanentRenderError", "RenderResult", "Renderer"]


class PermanentRenderError(L1Error):
    """A render that no retry can fix (missing input, unknown effect, bad media)."""


class RenderResult(msgspec.Struct, frozen=True, kw_only=True):
    """A stored output and its provenance."""

    output: StoredItem
    provenance: Provenance


class Renderer:
    """Turns render requests into stored outputs."""

    def __init__(
        self,
        *,
        items: Items,
        effects: EffectRegistry,
        processes: RenderProcesses,
        actor: str,
    ) -> None:
        self._items = items
        self._store = items.store
        self._effects = effects
        self._processes = processes
        self._actor = actor

    def quick(self, request: RenderRequest) -> bool:
        """True when rendering ``request`` only passes a file along (an inline effect,
        or an output already known)."""
        if request.known_output and self._store.exists(request.known_output):
            return True
        return request.effect in self._effects and self._effects.get(request.effect).inline

    @property
    def join_hash(self) -> str:
        """The content hash of the effect that puts a split step's parts together."""
        return self._effects.get(JOIN).content_hash

    async def render(
        self, request: RenderRequest, *, progress: Progress
    ) -> RenderResult | SegmentPlan:
        """Render one step; raises :class:`PermanentRenderError` when it can never succeed.

        A step whose output is already known (``known_output``) and present is not
        rendered again: only its provenance is written for this run. A per-frame step
        over a long video is not rendered either: the parts it is to be split into
        come back instead.
        """
        effect = self._effect(request)
        if request.known_output and await self._items.contains(request.known_output):
            output = await self._items.describe(request.known_output)
        else:
            hashes = [ref.content_hash for ref in request.inputs]
            with self._items.using(hashes):
                # A render reads its inputs through: checking them first costs little.
                verify = not effect.inline
                inputs = [await self._input_path(h, verify=verify) for h in hashes]
                made = await self._render(effect, inputs, request, progress)
                if isinstance(made, SegmentPlan):
                    return made
                output = made
                # The other hosts can read it before anyone is told it exists.
                await self._items.share(output)
        return RenderResult(output=output, provenance=self._provenance(request, effect, output))

    async def _render(
        self, effect: Effect, inputs: list[Path], request: RenderRequest, progress: Progress
    ) -> StoredItem | SegmentPlan:
        if effect.inline:
            params = _params(effect, request)
            produced = effect.load()(inputs, self._store.scratch, params, RenderContext())
            if (known := self._store.stored_hash_of(produced)) is not None:
                # Already in the store (identity): a stat and a header read, no copy.
                return self._store.describe(known)
            try:
                return await asyncio.to_thread(self._store.put_file, produced)
            finally:
                if produced.parent == self._store.scratch:  # made for this render alone
                    produced.unlink(missing_ok=True)
        try:
            return await self._processes.render(
                effect,
                inputs,
                request.params,
                progress=progress,
                # Only a whole step the run can split (a per-frame step in its recipe).
                split=request.segmentable and request.segment is None,
                segment=request.segment,
            )
        except RenderRefused as error:
            raise PermanentRenderError(str(error)) from None

    def _effect(self, request: RenderRequest) -> Effect:
        try:
            effect = self._effects.get(request.effect)
        except L1Error as error:
            raise PermanentRenderError(str(error)) from None
        if effect.content_hash != request.effect_hash:
            raise PermanentRenderError(
                f"this worker's {effect.name!r} is a different version "
                f"({effect.content_hash[:12]}, the run asks for {request.effect_hash[:12]})"
            )
        return effect

    async def _input_path(self, content_hash: str, *, verify: bool) -> Path:
        try:
            return await self._items.local_path(content_hash, verify=verify)
        except L1Error as error:
            raise PermanentRenderError(f"input missing: {error}") from None

    def _provenance(self, request: RenderRequest, effect: Effect, output: StoredItem) -> Provenance:
        return Provenance(
            task_id=uuid.uuid4().hex,
            run_id=request.run_id,
            rendered_at=utc_now(),
            rendered_by=self._actor,
            output=NamedHash(name=request.output_name, content_hash=output.content_hash),
            # The output step speaks for the whole run; an earlier step for itself.
            inputs=[
                NamedHash(name=i.name, content_hash=i.content_hash)
                for i in (request.run_inputs if request.final else request.inputs)
            ],
            effects=request.effects
            if request.final
            else [NamedHash(name=effect.name, content_hash=effect.content_hash)],
            infrastructure=infrastructure(),
        )


def _params(effect: Effect, request: RenderRequest) -> msgspec.Struct:
    try:
        return effect.parse_params(request.params)
    except L1Error as error:
        raise PermanentRenderError(str(error)) from None
