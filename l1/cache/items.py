"""The cache as one process sees it: its host's local store and, when the blob tier is
on (``L1_BLOB_TIER``), the tier every host shares behind it.

Without the tier, one machine's store is the whole cache (``l1 up``). With it, an item
is in the cache when it is in the tier; a host's local copy is a copy, fetched when it
is first needed and dropped when the item is deleted or space runs short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

from l1.errors import NotFound
from l1.events.transient import patiently
from l1.schemas import StoredItem

if TYPE_CHECKING:
    from pathlib import Path

    from l1.cache.blobs import BlobTier
    from l1.cache.store import ContentStore

__all__ = ["Items"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class Items:
    """Finds, shares and removes items across this host's store and the blob tier."""

    def __init__(
        self, store: ContentStore, tier: BlobTier | None = None, *, patience: float = 3.0
    ) -> None:
        self.store = store
        self.tier = tier
        self._patience = patience  # how long a call to the tier rides out a failover
        self._in_use: Counter[str] = Counter()
        self._fetching: dict[str, asyncio.Future[Path]] = {}

    @property
    def shared(self) -> bool:
        """True when the blob tier is on."""
        return self.tier is not None

    async def contains(self, content_hash: str) -> bool:
        """True when the cache holds the item (here, or in the tier)."""
        if self.store.exists(content_hash):
            return True
        tier = self.tier
        return tier is not None and await self._patiently(lambda: tier.has(content_hash))

    async def local_path(self, content_hash: str, *, verify: bool = False) -> Path:
        """The item's file on this host: the local copy, or one fetched from the tier
        now. Every copy is checked against its seal; with ``verify`` it is also read
        through and hashed (what a render about to read it all anyway can afford).
        :class:`NotFound` when the cache does not hold it (intact)."""
        try:
            path = self.store.open_path(content_hash)
        except NotFound:
            if self.tier is None:
                raise
        else:
            if not verify or await asyncio.to_thread(self.store.verify, content_hash):
                self._used(path)
                return path
            if self.tier is None:
                raise NotFound(f"{content_hash} was damaged on this host's disk")
        return await self._fetch_once(content_hash)

    def _used(self, path: Path) -> None:
        """Note the copy's last use, for eviction to go by (only copies are evicted)."""
        if self.tier is not None:
            with contextlib.suppress(OSError):
                os.utime(path, ns=(time.time_ns(), path.stat().st_mtime_ns))

    async def _fetch_once(self, content_hash: str) -> Path:
        """Fetch from the tier: one fetch per item at a time, however many want it."""
        if (pending := self._fetching.get(content_hash)) is not None:
            return await asyncio.shield(pending)
        fetching = asyncio.get_running_loop().create_future()
        self._fetching[content_hash] = fetching
        try:
            path = await self._patiently(lambda: self._fetch(content_hash))
            fetching.set_result(path)
            return path
        except BaseException as error:
            fetching.set_exception(error)
            fetching.exception()  # retrieved: others waiting get it too
            raise
        finally:
            del self._fetching[content_hash]

    async def _fetch(self, content_hash: str) -> Path:
        assert self.tier is not None
        incoming = await asyncio.to_thread(self.store.incoming)
        try:
            found = await self.tier.fetch(content_hash, incoming)
            if not found:
                raise NotFound(f"{content_hash} is not in the cache")
            await asyncio.to_thread(incoming.finish)
            await asyncio.to_thread(self.store.commit, incoming)
        except BaseException:  # nothing of a failed or refused fetch is kept
            await asyncio.to_thread(self.store.discard, incoming)
            raise
        return self.store.open_path(content_hash)

    async def share(self, item: StoredItem) -> None:
        """Put a locally stored item into the tier (nothing without one), before anyone
        is told it exists."""
        tier = self.tier
        if tier is None:
            return
        with self.using([item.content_hash]):
            path = self.store.open_path(item.content_hash)
            await self._patiently(
                lambda: tier.put(path, item.content_hash, content_type=item.content_type)
            )

    async def remove(self, content_hash: str) -> bool:
        """Delete the item here and from the tier; True if it was in either."""
        local = await asyncio.to_thread(self.store.delete, content_hash)
        tier = self.tier
        if tier is None:
            return local
        shared = await self._patiently(lambda: tier.has(content_hash))
        await self._patiently(lambda: tier.delete(content_hash))
        return local or shared

    async def hashes(self) -> set[str]:
        """Every item the cache holds (the tier's, with one on)."""
        if (tier := self.tier) is not None:
            return await self._patiently(tier.names)
        return set(await asyncio.to_thread(lambda: list(self.store.iter_hashes())))

    async def describe(self, content_hash: str) -> StoredItem:
        """Size and media type of an item, from the local copy or the tier."""
        with contextlib.suppress(NotFound):
            return await asyncio.to_thread(self.store.describe, content_hash)
        tier = self.tier
        if tier is not None and (
            found := await self._patiently(lambda: tier.describe(content_hash))
        ):
            return found
        raise NotFound(f"{content_hash} is not in the cache")

    async def _patiently(self, call: Callable[[], Awaitable[T]]) -> T:
        return await patiently(call, within=self._patience, what="the blob tier")

    @contextlib.contextmanager
    def using(self, hashes: Iterable[str]) -> Iterator[None]:
        """Mark items in use here: space is never made by evicting them meanwhile."""
        held = list(hashes)
        self._in_use.update(held)
        try:
            yield
        finally:
            self._in_use.subtract(held)
            self._in_use += Counter()  # drop the zeros

    def in_use(self, content_hash: str) -> bool:
        """True while something in this process uses the item."""
        return self._in_use[content_hash] > 0
