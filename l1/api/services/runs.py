"""Accepting runs: validate, derive the run id, record, and hand the render to JetStream."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from l1.errors import InvalidInput, NotFound, Unprocessable
from l1.events.schemas import RunSubmitted
from l1.identifiers import is_content_hash, run_id_for
from l1.schemas import InputRef, Page, RenderRequest, Run, RunStatus, RunSubmission
from l1.timestamps import utc_now

if TYPE_CHECKING:
    from l1.api.run_waiter import RunWaiter
    from l1.assets import Asset
    from l1.cache.store import ContentStore
    from l1.events.publisher import Publisher
    from l1.run_store import RunStore
    from l1.workers.effects import EffectRegistry

__all__ = ["RunService"]

# Long hex strings that are not exactly a content hash are malformed hashes, not names.
_HEXISH = re.compile(r"^[0-9a-fA-F]{16,}$")


class RunService:
    """Submits runs and reads them back."""

    def __init__(
        self,
        *,
        runs: RunStore,
        store: ContentStore,
        effects: EffectRegistry,
        assets: dict[str, Asset],
        publisher: Publisher,
        waiter: RunWaiter,
    ) -> None:
        self._runs = runs
        self._store = store
        self._effects = effects
        self._assets = assets
        self._publisher = publisher
        self._waiter = waiter

    async def submit(self, submission: RunSubmission, *, requested_by: str) -> tuple[Run, bool]:
        """Accept ``submission``; returns the run and whether it is new.

        The same recipe over the same inputs is the same run: a repeat returns the first.
        """
        effect = self._effects.get(submission.recipe)
        inputs = [self._resolve(name) for name in submission.inputs]
        if len(inputs) != effect.inputs:
            raise Unprocessable(
                f"recipe {effect.name!r} takes {effect.inputs} input(s), not {len(inputs)}"
            )
        run_id = run_id_for(effect.name, effect.content_hash, [i.content_hash for i in inputs])
        existing = await self._runs.get(run_id)
        if existing is not None:
            return existing, False
        run = Run(
            run_id=run_id,
            recipe=effect.name,
            recipe_hash=effect.content_hash,
            inputs=inputs,
            output_name=submission.output_name or _default_output_name(effect.name, inputs),
            created_at=utc_now(),
            requested_by=requested_by,
        )
        stored, created = await self._runs.create(run)
        if created:
            await self._dispatch(stored)
        return stored, created

    async def get(self, run_id: str, *, wait: float = 0.0) -> Run:
        """The run, waiting up to ``wait`` seconds for it to finish."""
        if not is_content_hash(run_id):
            raise InvalidInput(f"{run_id[:80]!r} is not a run id (64 lowercase hex characters)")
        run = await (self._waiter.wait(run_id, wait) if wait > 0 else self._runs.get(run_id))
        if run is None:
            raise NotFound(f"no run {run_id}")
        return run

    async def page(self, *, limit: int, cursor: str | None, status: RunStatus | None) -> Page[Run]:
        """Runs, newest first."""
        return await self._runs.page(limit=limit, cursor=cursor, status=status)

    async def _dispatch(self, run: Run) -> None:
        await self._publisher.event(
            RunSubmitted(
                event_id=f"{run.run_id}.submitted", at=run.created_at, run_id=run.run_id, run=run
            )
        )
        await self._publisher.render_request(
            RenderRequest(
                run_id=run.run_id,
                recipe=run.recipe,
                recipe_hash=run.recipe_hash,
                inputs=run.inputs,
                output_name=run.output_name,
                requested_by=run.requested_by,
                submitted_at=run.created_at,
            )
        )

    def _resolve(self, name: str) -> InputRef:
        if (asset := self._assets.get(name)) is not None:
            return InputRef(name=name, content_hash=asset.content_hash)
        if is_content_hash(name):
            if not self._store.exists(name):
                raise Unprocessable(f"input {name} is not in the cache; import or upload it first")
            return InputRef(name=name, content_hash=name)
        if _HEXISH.fullmatch(name):
            raise InvalidInput(
                f"input {name[:80]!r} is not a content hash (64 lowercase hex characters)"
            )
        known = ", ".join(sorted(self._assets))
        raise Unprocessable(
            f"input {name[:80]!r} is neither a content hash nor a known asset ({known})"
        )


def _default_output_name(recipe: str, inputs: list[InputRef]) -> str:
    names = "-".join(i.name if len(i.name) < 64 else i.name[:12] for i in inputs)
    return f"{recipe}-{names}"[:200]
