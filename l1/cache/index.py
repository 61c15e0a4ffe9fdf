"""The cache index in Redis: what each stored item is, and the provenance of outputs.

Written by the event subscribers, read by the API. The files themselves are the
truth about what exists; the index is for listing and metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import msgspec

from l1 import keys
from l1.pagination import newest_first
from l1.schemas import Page, Provenance
from l1.timestamps import micros

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["CacheIndex", "CacheItem"]


class CacheItem(msgspec.Struct, kw_only=True):
    """One entry of ``GET /cache``."""

    content_hash: str
    size: int
    content_type: str
    stored_at: str
    # True when the item's only copy was found damaged and set aside (one machine, no
    # blob tier): the item is lost until the same bytes are stored again.
    lost: bool = False


_item_decoder = msgspec.json.Decoder(CacheItem)
_provenance_decoder = msgspec.json.Decoder(Provenance)
_encoder = msgspec.json.Encoder()


class CacheIndex:
    """Reads and writes the cache index."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def record(self, changes: Sequence[CacheItem | str]) -> None:
        """Index each stored item (the first time it was stored is the one kept) and
        forget each deleted one (a content hash) with its provenance, in order, in one
        round trip."""
        async with self._redis.pipeline(transaction=True) as pipe:
            for change in changes:
                if isinstance(change, CacheItem):
                    key, score = keys.cache_item(change.content_hash), micros(change.stored_at)
                    pipe.set(key, _encoder.encode(change), nx=True)
                    pipe.zadd(keys.CACHE_ITEMS, {change.content_hash: score}, nx=True)
                    pipe.zadd(keys.CACHE_HASHES, {change.content_hash: 0})
                    pipe.srem(keys.CACHE_LOST, change.content_hash)  # stored again: back
                else:
                    pipe.delete(keys.cache_item(change), keys.provenance(change))
                    pipe.zrem(keys.CACHE_ITEMS, change)
                    pipe.zrem(keys.CACHE_HASHES, change)
                    pipe.srem(keys.CACHE_LOST, change)
            await pipe.execute()

    async def record_lost(self, content_hash: str) -> bool:
        """Mark an indexed item lost (its only copy was damaged); True the first time."""
        return bool(await self._redis.sadd(keys.CACHE_LOST, content_hash))

    async def record_stored(self, item: CacheItem) -> None:
        """Index ``item``; the first time it was stored is the one kept."""
        await self.record([item])

    async def record_deleted(self, content_hash: str) -> None:
        """Forget an item and its provenance."""
        await self.record([content_hash])

    async def get(self, content_hash: str) -> CacheItem | None:
        """The index entry of an item, or None."""
        raw = await self._redis.get(keys.cache_item(content_hash))
        if raw is None:
            return None
        item = _item_decoder.decode(raw)
        item.lost = bool(await self._redis.sismember(keys.CACHE_LOST, content_hash))
        return item

    async def hashes(self) -> list[str]:
        """Every indexed content hash."""
        members = cast("list[bytes]", await self._redis.zrange(keys.CACHE_ITEMS, 0, -1))
        return [m.decode() for m in members]

    async def page(self, *, limit: int, cursor: str | None) -> Page[CacheItem]:
        """Items, most recently stored first."""
        hashes, next_cursor = await newest_first(
            self._redis, keys.CACHE_ITEMS, limit=limit, cursor=cursor
        )
        if not hashes:
            return Page(items=[], next_cursor=next_cursor)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.mget([keys.cache_item(h) for h in hashes])
            pipe.smembers(keys.CACHE_LOST)  # few or none: lost items are rare
            raws, lost = await pipe.execute()
        items = [_item_decoder.decode(raw) for raw in raws if raw is not None]
        for item in items:
            item.lost = item.content_hash.encode() in lost
        return Page(items=items, next_cursor=next_cursor)

    @staticmethod
    def step_entry(cache_id: str, output_hash: str) -> tuple[str, bytes]:
        """What remembering the output of a step writes (key, value): no run renders
        that step again."""
        return keys.step(cache_id), output_hash.encode()

    async def step_outputs(self, cache_ids: list[str]) -> dict[str, str]:
        """The outputs the steps with ``cache_ids`` made before, where there are any."""
        if not cache_ids:
            return {}
        found = await self._redis.mget([keys.step(cache_id) for cache_id in cache_ids])
        raws = cast("list[bytes | None]", found)
        return {c: raw.decode() for c, raw in zip(cache_ids, raws, strict=True) if raw}

    @staticmethod
    def provenance_entry(provenance: Provenance) -> tuple[str, bytes]:
        """What keeping the provenance of an output writes (key, value); the first
        record written stays."""
        return keys.provenance(provenance.output.content_hash), _encoder.encode(provenance)

    async def provenance(self, content_hash: str) -> Provenance | None:
        """The provenance of an output, or None."""
        raw = await self._redis.get(keys.provenance(content_hash))
        return None if raw is None else _provenance_decoder.decode(raw)
