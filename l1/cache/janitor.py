"""Keeping a host's local copies in step with the cache they copy.

With the blob tier on, a host's local store holds copies: a deletion anywhere removes
the item from the tier and announces it (``l1.cache.<hash>.deleted``), and every host
drops its copy when it hears; a host that was away finds what it missed on its next
sweep (copies the tier no longer holds). Under ``L1_CACHE_MAX_BYTES`` the least
recently used copies are let go, since the tier keeps them; never one this process
is using, nor one used in the last :data:`RECENT` seconds.

Every host also scrubs its store (:mod:`l1.cache.scrubber`), with the tier or without
one: a copy changed through the file system is caught when it is next opened (its seal
is broken), and the scrubber reads every copy through, at a bounded rate, for the
damage a seal cannot see.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import TYPE_CHECKING

from l1.cache.scrubber import Scrubber
from l1.errors import InvalidInput
from l1.events import subjects
from l1.events.consumer import quietly
from l1.runtime import every

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.aio.msg import Msg

    from l1.cache.items import Items

__all__ = ["Janitor"]

log = logging.getLogger(__name__)

SWEEP_EVERY = 60.0
# A copy newer than this is left alone by the sweep: it may be on its way into the tier.
SETTLE = 600.0
RECENT = 60.0


class Janitor:
    """Scrubs the local store; with the tier on, also drops the local copies of deleted
    items and makes room under a size limit."""

    def __init__(
        self, items: Items, nc: NATS, *, max_bytes: int, scrub_bytes_per_second: int = 0
    ) -> None:
        self._items = items
        self._nc = nc
        self._max_bytes = max_bytes
        self.scrubber = Scrubber(items, bytes_per_second=scrub_bytes_per_second)

    async def run(self, stop: asyncio.Event) -> None:
        """Scrub and, with the tier on, keep the copies in step, until ``stop`` is set."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.scrubber.run(stop))
            if self._items.shared:
                group.create_task(self._keep_in_step(stop))

    async def _keep_in_step(self, stop: asyncio.Event) -> None:
        """Listen for deletions and sweep now and then, until ``stop`` is set."""
        subscription = await self._nc.subscribe(
            subjects.cache_event("*", "deleted"), cb=self._deleted
        )
        try:
            await every(SWEEP_EVERY, stop, self.sweep, skip_on=(OSError, TimeoutError))
        finally:
            await quietly(subscription.unsubscribe())

    async def _deleted(self, msg: Msg) -> None:
        content_hash = msg.subject.split(".")[2]
        if not self._items.in_use(content_hash):
            with contextlib.suppress(InvalidInput):  # not a hash: not ours to act on
                await asyncio.to_thread(self._items.store.delete, content_hash)

    async def sweep(self) -> str | None:
        """Drop copies of items the tier no longer holds, then the least recently used
        ones past the size limit; says what it dropped, if anything."""
        if not self._items.shared:
            return None
        held = await self._items.hashes()
        copies = await asyncio.to_thread(self._copies)
        now = time.time()
        orphans = [c for c in copies if c.name not in held and now - c.written > SETTLE]
        dropped = sum([await self._drop(c) for c in orphans])
        dropped_names = {o.name for o in orphans}
        kept = [c for c in copies if c.name not in dropped_names]
        evicted = await self._make_room(kept, now)
        if dropped or evicted:
            return (
                f"local cache: {dropped} deleted item(s) dropped, {len(evicted)} evicted for room"
            )
        return None

    async def _make_room(self, copies: list[_Copy], now: float) -> list[_Copy]:
        """Drop the least recently used copies until they fit; the ones dropped."""
        if not self._max_bytes:
            return []
        excess = sum(c.size for c in copies) - self._max_bytes
        evicted = []
        for copy in sorted(copies, key=lambda c: c.used):
            if excess <= 0:
                break
            if now - copy.used > RECENT and await self._drop(copy):
                excess -= copy.size
                evicted.append(copy)
        return evicted

    async def _drop(self, copy: _Copy) -> bool:
        if self._items.in_use(copy.name):
            return False
        return await asyncio.to_thread(self._items.store.delete, copy.name)

    def _copies(self) -> list[_Copy]:
        copies = []
        for name in self._items.store.iter_hashes():
            with contextlib.suppress(FileNotFoundError):
                stat = os.stat(self._items.store.path_for(name))
                copies.append(_Copy(name, stat.st_size, stat.st_atime, stat.st_mtime))
        return copies


class _Copy:
    """A local copy: its name, size, when it was last used and when it was written."""

    __slots__ = ("name", "size", "used", "written")

    def __init__(self, name: str, size: int, used: float, written: float) -> None:
        self.name, self.size, self.used, self.written = name, size, used, written
