"""The deletion rules.

1. An item published to L2 cannot be deleted.
2. An input or output of any run cannot be deleted.
3. An item referenced by nothing (orphaned) can be deleted.
4. A run can be discarded only if none of its items is published; discarding removes
   the run's activity, then deletes its output and inputs left orphaned and unpublished.
   A discard claims the run first, so of many at once one discards it, and no retry or
   publish of the run slips in while it does.

"Published" is asked of L2 (and of the marks this server keeps when it publishes);
when L2 cannot be reached the deletion is refused, never guessed. The check and the
delete are atomic against runs starting to use the item: see :mod:`l1.cache.references`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import msgspec

from l1.cache.references import Claim
from l1.errors import Conflict, DependencyDown, NotFound
from l1.events.schemas import CacheDeleted, RunDiscarded
from l1.l2_client import Published
from l1.runs.store import RunAction

if TYPE_CHECKING:
    from l1.cache.activities import ActivityLog
    from l1.cache.items import Items
    from l1.cache.references import References
    from l1.events.publisher import Publisher
    from l1.l2_client import L2Client
    from l1.runs.store import RunStore
    from l1.schemas import Run

__all__ = ["DeletionRules", "DiscardReport", "GcReport", "ItemMeta"]


class ItemMeta(msgspec.Struct, kw_only=True):
    """Who holds an item and whether it may be deleted (``GET /cache/{hash}/meta``)."""

    content_hash: str
    size: int
    content_type: str
    used_by: list[str]
    published: Published
    deletable: bool
    reasons: list[str]


class HeldItem(msgspec.Struct, kw_only=True):
    """An item that was not deleted, and why."""

    content_hash: str
    reasons: list[str]


class GcReport(msgspec.Struct, kw_only=True):
    """What a garbage collection deleted (or would delete) and what holds the rest."""

    dry_run: bool
    deletable: list[str]
    deleted: list[str]
    held: list[HeldItem]


class DiscardReport(msgspec.Struct, kw_only=True):
    """What discarding a run removed."""

    run_id: str
    deleted: list[str]
    kept: list[HeldItem]


class DeletionRules:
    """Applies the deletion rules to cache items and runs."""

    def __init__(
        self,
        *,
        items: Items,
        runs: RunStore,
        activities: ActivityLog,
        references: References,
        l2: L2Client,
        publisher: Publisher,
    ) -> None:
        self._items = items
        self._runs = runs
        self._activities = activities
        self._references = references
        self._l2 = l2
        self._publisher = publisher

    async def published(self, content_hash: str) -> Published:
        """Whether the item is published: marked here, or said so by L2."""
        if await self._references.published_marks([content_hash]):
            return Published.YES
        return await self._l2.published(content_hash)

    async def meta(self, content_hash: str) -> ItemMeta:
        """Who holds the item and whether it can be deleted, with the reasons."""
        item = await self._items.describe(content_hash)
        users = sorted(await self._references.holders(content_hash))
        published = await self.published(content_hash)
        reasons = [await self._role(content_hash, run_id) for run_id in users]
        reasons += _publication_reasons(published)
        return ItemMeta(
            content_hash=content_hash,
            size=item.size,
            content_type=item.content_type,
            used_by=users,
            published=published,
            deletable=not reasons,
            reasons=reasons,
        )

    async def delete(self, content_hash: str) -> None:
        """Delete an item the rules allow; :class:`Conflict` naming the rule otherwise."""
        if not await self._items.contains(content_hash):
            raise NotFound(f"{content_hash} is not in the cache")
        published = _require_answer(await self.published(content_hash), content_hash)
        if published is Published.YES:
            raise _refusal(content_hash, _publication_reasons(published))
        claim = await self._references.claim_for_deletion(content_hash)
        match claim.outcome:
            case Claim.USED:
                roles = [await self._role(content_hash, run_id) for run_id in claim.runs]
                raise _refusal(content_hash, roles)
            case Claim.PUBLISHED:
                raise _refusal(content_hash, ["it is published to L2"])
            case Claim.BUSY:
                raise Conflict(f"{content_hash} is being deleted by another request")
        try:
            # Another deletion may have removed it between our look and our claim:
            # only the one that removes it answers 204 and announces it (other hosts
            # drop their local copies when they hear of it).
            if not await self._items.remove(content_hash):
                raise NotFound(f"{content_hash} is not in the cache")
            await self._publisher.event(CacheDeleted.of(content_hash, claim=claim.token))
        finally:
            await self._references.end_deletion(content_hash, claim.token)
        self._l2.forget(content_hash)

    async def discard(self, run: Run) -> DiscardReport:
        """Remove a finished run and its activity, then delete the items it leaves
        orphaned and unpublished; :class:`Conflict` while another request discards,
        retries or publishes it."""
        async with self._runs.claimed(run.run_id, RunAction.DISCARD, check=_finished) as held:
            return await self._discard(held)

    async def _discard(self, run: Run) -> DiscardReport:
        activity = await self._activities.get(run.run_id)
        items = list(dict.fromkeys([*run.items, *(activity.items if activity else [])]))
        for item in items:
            if _require_answer(await self.published(item), item) is Published.YES:
                raise Conflict(f"run {run.run_id} cannot be discarded: {item} is published to L2")
        if activity is not None:
            await self._activities.remove(activity)
        await self._runs.delete(run)
        await self._references.release(run.run_id, items)
        deleted, kept = await self._delete_orphans(items)
        await self._publisher.event(RunDiscarded.of(run))
        return DiscardReport(run_id=run.run_id, deleted=deleted, kept=kept)

    async def collect(self, *, dry_run: bool) -> GcReport:
        """Every stored item checked against the rules; deletes the deletable unless
        ``dry_run``."""
        hashes = sorted(await self._items.hashes())
        metas = await _bounded(self.meta, hashes)
        deletable = [m.content_hash for m in metas if m.deletable]
        held = [
            HeldItem(content_hash=m.content_hash, reasons=m.reasons)
            for m in metas
            if not m.deletable
        ]
        deleted: list[str] = []
        if not dry_run:
            deleted, refused = await self._delete_orphans(deletable)
            held += refused
        return GcReport(dry_run=dry_run, deletable=deletable, deleted=deleted, held=held)

    async def _delete_orphans(self, items: list[str]) -> tuple[list[str], list[HeldItem]]:
        deleted: list[str] = []
        kept: list[HeldItem] = []
        for item in items:
            try:
                await self.delete(item)
            except (Conflict, NotFound, DependencyDown) as error:
                kept.append(HeldItem(content_hash=item, reasons=[str(error)]))
            else:
                deleted.append(item)
        return deleted, kept

    async def _role(self, content_hash: str, run_id: str) -> str:
        if run_id.startswith("asset:"):
            return f"it is the named asset {run_id.removeprefix('asset:')!r}"
        if run_id.startswith("storing:"):
            return "it is being stored right now"
        run = await self._runs.get(run_id)
        if run is not None and run.output_hash == content_hash:
            return f"it is the output of run {run_id}"
        if run is not None and content_hash in {i.content_hash for i in run.inputs}:
            return f"it is an input of run {run_id}"
        return f"it is used by run {run_id}"


L2_DOWN = "L2 cannot be reached to say whether it is published"


def _finished(run: Run) -> None:
    if not run.status.terminal:
        raise Conflict(f"run {run.run_id} is {run.status}; cancel it first")


def _publication_reasons(published: Published) -> list[str]:
    if published is Published.YES:
        return ["it is published to L2"]
    if published is Published.UNKNOWN:
        return [L2_DOWN]
    return []


def _require_answer(published: Published, content_hash: str) -> Published:
    """Never delete on a guess: refuse (503) when L2 cannot say."""
    if published is Published.UNKNOWN:
        raise DependencyDown(f"{content_hash} cannot be deleted now: {L2_DOWN}")
    return published


def _refusal(content_hash: str, reasons: list[str]) -> Conflict:
    return Conflict(f"{content_hash} cannot be deleted: {'; '.join(reasons)}")


async def _bounded(
    fn: Callable[[str], Awaitable[ItemMeta]], items: list[str], limit: int = 16
) -> list[ItemMeta]:
    """``fn`` over ``items``, at most ``limit`` at a time (L2 is asked for each)."""
    semaphore = asyncio.Semaphore(limit)

    async def one(item: str) -> ItemMeta:
        async with semaphore:
            return await fn(item)

    return await asyncio.gather(*(one(item) for item in items))
