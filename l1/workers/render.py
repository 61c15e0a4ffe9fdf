"""Rendering one request: read the inputs from the cache, run the effect in a pool,
store the output, and describe how it was made."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from l1.errors import L1Error
from l1.schemas import NamedHash, Provenance
from l1.timestamps import utc_now
from l1.workers.effects.media import MediaError
from l1.workers.infrastructure import infrastructure

if TYPE_CHECKING:
    from l1.cache.store import ContentStore, StoredItem
    from l1.schemas import RenderRequest
    from l1.workers.effects import Effect, EffectRegistry
    from l1.workers.effects.registry import Progress

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
        self, *, store: ContentStore, effects: EffectRegistry, executor: Executor, actor: str
    ) -> None:
        self._store = store
        self._effects = effects
        self._executor = executor
        self._actor = actor

    async def render(self, request: RenderRequest, *, progress: Progress) -> RenderResult:
        """Render one step; raises :class:`PermanentRenderError` when it can never succeed.

        A step whose output is already known (``known_output``) and present is not
        rendered again: only its provenance is written for this run.
        """
        effect = self._effect(request)
        if request.known_output and self._store.exists(request.known_output):
            output = await asyncio.to_thread(self._store.describe, request.known_output)
        else:
            inputs = [self._input_path(ref.content_hash) for ref in request.inputs]
            params = _params(effect, request)
            loop = asyncio.get_running_loop()
            output = await loop.run_in_executor(
                self._executor, self._render_and_store, effect, inputs, params, progress
            )
        return RenderResult(output=output, provenance=self._provenance(request, effect, output))

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

    def _input_path(self, content_hash: str) -> Path:
        try:
            return self._store.open_path(content_hash)
        except L1Error as error:
            raise PermanentRenderError(f"input missing: {error}") from None

    def _render_and_store(
        self, effect: Effect, inputs: list[Path], params: msgspec.Struct, progress: Progress
    ) -> StoredItem:
        with tempfile.TemporaryDirectory(dir=self._store.root / "tmp") as workdir:
            try:
                produced = effect.render(inputs, Path(workdir), params, progress)
            except MediaError as error:
                raise PermanentRenderError(f"{effect.name}: {error}") from None
            return self._store.put_file(produced)

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
