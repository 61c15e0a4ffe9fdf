"""The cache projector: keeps the cache index current from ``l1.cache.>`` events, a
fetched batch in one round trip."""

from __future__ import annotations

from typing import TYPE_CHECKING

from l1.cache.index import CacheItem
from l1.events.schemas import CacheDeleted, CacheEvent, CacheStored

if TYPE_CHECKING:
    from l1.cache.index import CacheIndex

__all__ = ["CacheProjector"]


class CacheProjector:
    """Applies cache events to the index; each is idempotent."""

    def __init__(self, index: CacheIndex) -> None:
        self._index = index

    async def handle(self, events: list[CacheEvent]) -> list[bool]:
        """Apply ``events`` in order; every one is applied (True) or the call fails."""
        changes: list[CacheItem | str] = []
        for event in events:
            match event:
                case CacheStored():
                    changes.append(
                        CacheItem(
                            content_hash=event.content_hash,
                            size=event.size,
                            content_type=event.content_type,
                            stored_at=event.at,
                        )
                    )
                case CacheDeleted():
                    changes.append(event.content_hash)
        await self._index.record(changes)
        return [True] * len(events)
