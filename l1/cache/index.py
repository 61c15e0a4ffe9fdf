"""The cache index in Redis: what each stored item is, and the provenance of outputs.

Written by the event subscribers, read by the API. The files themselves are the
truth about what exists; the index is for listing and metadata.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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


_item_decoder = msgspec.json.Decoder(CacheItem)
_provenance_decoder = msgspec.json.Decoder(Provenance)
_encoder = msgspec.json.Encoder()


class CacheIndex:
    """Reads and writes the cache index."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def record_stored(self, item: CacheItem) -> None:
        """Index ``item``; the first time it was stored is the one kept."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.cache_item(item.content_hash), _encoder.encode(item), nx=True)
            pipe.zadd(keys.CACHE_ITEMS, {item.content_hash: micros(item.stored_at)}, nx=True)
            await pipe.execute()

    async def record_deleted(self, content_hash: str) -> None:
        """Forget an item and its provenance."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.cache_item(content_hash), keys.provenance(content_hash))
            pipe.zrem(keys.CACHE_ITEMS, content_hash)
            await pipe.execute()

    async def get(self, content_hash: str) -> CacheItem | None:
        """The index entry of an item, or None."""
        raw = await self._redis.get(keys.cache_item(content_hash))
        return None if raw is None else _item_decoder.decode(raw)

    async def page(self, *, limit: int, cursor: str | None) -> Page[CacheItem]:
        """Items, most recently stored first."""
        hashes, next_cursor = await newest_first(
            self._redis, keys.CACHE_ITEMS, limit=limit, cursor=cursor
        )
        raws = await self._redis.mget([keys.cache_item(h) for h in hashes]) if hashes else []
        items = [_item_decoder.decode(raw) for raw in raws if raw is not None]
        return Page(items=items, next_cursor=next_cursor)

    async def record_step(self, cache_id: str, output_hash: str) -> None:
        """Remember the output of a step, so that no run renders it again."""
        await self._redis.set(keys.step(cache_id), output_hash)

    async def step_output(self, cache_id: str) -> str | None:
        """The output a step with ``cache_id`` made before, if any."""
        raw = await self._redis.get(keys.step(cache_id))
        return raw.decode() if isinstance(raw, bytes) else raw

    async def record_provenance(self, provenance: Provenance) -> None:
        """Keep the provenance of an output; the first record written stays."""
        key = keys.provenance(provenance.output.content_hash)
        await self._redis.set(key, _encoder.encode(provenance), nx=True)

    async def provenance(self, content_hash: str) -> Provenance | None:
        """The provenance of an output, or None."""
        raw = await self._redis.get(keys.provenance(content_hash))
        return None if raw is None else _provenance_decoder.decode(raw)
