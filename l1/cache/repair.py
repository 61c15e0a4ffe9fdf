"""Keeping the cache index in step with the files.

Uploads and deletions hold each other off (see :mod:`l1.cache.references`), so the
index follows the store through the events. This pass catches what events cannot:
an event lost with a crashed process, a file put in place by hand. It indexes every
stored file the index misses, and forgets entries whose file is gone, leaving alone an
item that is being stored or deleted right now, and files written in the last
:data:`SETTLE` seconds (their events are on the way).

An entry whose file is gone because it was found damaged and set aside (by the seal
check or the scrubber) is not forgotten: on one machine that copy was the only one, so
the entry is marked lost, and ``GET /cache`` says so until the same bytes are stored
again. (With the blob tier on, the tier's copy stands; the host fetches it again.)
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from l1.cache.index import CacheItem
from l1.errors import NotFound
from l1.timestamps import utc_now

if TYPE_CHECKING:
    from l1.cache.index import CacheIndex
    from l1.cache.items import Items
    from l1.cache.references import References

__all__ = ["SETTLE", "IndexRepair"]

log = logging.getLogger(__name__)

SETTLE = 30.0


class IndexRepair:
    """Compares the index with the store and mends the differences."""

    def __init__(self, *, items: Items, index: CacheIndex, references: References) -> None:
        self._items = items
        self._store = items.store
        self._index = index
        self._references = references

    async def once(self) -> str | None:
        """One pass; says what it mended, if anything."""
        on_disk = await self._items.hashes()
        indexed = set(await self._index.hashes())
        added = sum([await self._add(h) for h in sorted(on_disk - indexed)])
        missing = sorted(indexed - on_disk)
        # On one machine a copy set aside as damaged was the only one: lost, not forgotten.
        damaged = [] if self._items.shared else [h for h in missing if self._store.was_damaged(h)]
        lost = sum([await self._lost(h) for h in damaged])
        removed = sum([await self._remove(h) for h in missing if h not in damaged])
        if added or removed or lost:
            return (
                f"cache index mended: {added} file(s) indexed, {removed} missing file(s)"
                f" forgotten, {lost} damaged item(s) marked lost"
            )
        return None

    async def _lost(self, content_hash: str) -> bool:
        """Mark the item, whose only copy was set aside as damaged, lost; True when
        newly marked."""
        if await self._references.busy(content_hash) or self._store.exists(content_hash):
            return False
        if not await self._index.record_lost(content_hash):
            return False
        log.error("%s is lost: its only copy was damaged on disk (kept in damaged/)", content_hash)
        return True

    async def _add(self, content_hash: str) -> bool:
        holder = f"storing:repair:{content_hash}"
        if await self._references.hold(holder, [content_hash]) is not None:
            return False  # being deleted: the deletion settles the index
        try:
            if self._store.exists(content_hash):
                if await asyncio.to_thread(self._store.age, content_hash) < SETTLE:
                    return False
            elif await self._references.busy(content_hash):
                return False
            item = await self._items.describe(content_hash)
        except NotFound:
            return False
        finally:
            await self._references.release(holder, [content_hash])
        await self._index.record_stored(
            CacheItem(
                content_hash=content_hash,
                size=item.size,
                content_type=item.content_type,
                stored_at=utc_now(),
            )
        )
        return True

    async def _remove(self, content_hash: str) -> bool:
        if await self._references.busy(content_hash) or await self._items.contains(content_hash):
            return False
        await self._index.record_deleted(content_hash)
        return True
