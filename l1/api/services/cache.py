"""The cache as the API offers it: import, upload, list, download and provenance."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from l1.errors import Forbidden, InvalidInput, NotFound, Unprocessable
from l1.events.schemas import CacheStored

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Sequence

    from l1.cache.index import CacheIndex, CacheItem
    from l1.cache.store import ContentStore, StoredItem
    from l1.events.publisher import Publisher
    from l1.schemas import Page, Provenance

__all__ = ["CacheService"]


class CacheService:
    """Puts items into the content-addressed store and reads them back."""

    def __init__(
        self,
        *,
        store: ContentStore,
        index: CacheIndex,
        publisher: Publisher,
        import_roots: Sequence[Path],
        max_upload_bytes: int,
    ) -> None:
        self._store = store
        self._index = index
        self._publisher = publisher
        self._import_roots = [root.resolve() for root in import_roots]
        self.max_upload_bytes = max_upload_bytes

    async def import_path(self, raw_path: str) -> StoredItem:
        """Store a file from the server's filesystem, if it lies under an import root."""
        path = await asyncio.to_thread(self._allowed_path, raw_path)
        return await self.store_file(path, source="import")

    async def upload(self, chunks: AsyncIterable[bytes]) -> StoredItem:
        """Store an uploaded stream, up to ``max_upload_bytes``."""
        item = await self._store.put_stream(chunks, max_bytes=self.max_upload_bytes)
        await self._announce(item, source="upload")
        return item

    async def store_file(self, path: Path, *, source: str) -> StoredItem:
        """Store a file the server itself provides (the shipped assets)."""
        item = await asyncio.to_thread(self._store.put_file, path)
        await self._announce(item, source=source)
        return item

    async def page(self, *, limit: int, cursor: str | None) -> Page[CacheItem]:
        """Stored items, most recent first."""
        return await self._index.page(limit=limit, cursor=cursor)

    async def locate(self, content_hash: str) -> tuple[Path, StoredItem]:
        """The file of an item and its description; :class:`NotFound` if absent."""
        path = self._store.open_path(content_hash)
        return path, await asyncio.to_thread(self._store.describe, content_hash)

    async def provenance(self, content_hash: str) -> Provenance:
        """How an output was made."""
        self._store.path_for(content_hash)  # rejects a malformed hash with 400
        provenance = await self._index.provenance(content_hash)
        if provenance is None:
            raise NotFound(f"no provenance for {content_hash}: it is not the output of a run")
        return provenance

    def _allowed_path(self, raw_path: str) -> Path:
        if "\x00" in raw_path or not raw_path.strip():
            raise InvalidInput("path must be a non-empty file path")
        if not self._import_roots:
            raise Forbidden("importing by path is disabled: set L1_IMPORT_ROOTS to allow it")
        candidate = Path(raw_path)
        if not candidate.is_absolute():
            raise InvalidInput(f"path must be absolute: {raw_path[:200]!r}")
        try:
            # Resolve symlinks and '..' before the check, so neither can escape a root.
            resolved = candidate.resolve(strict=True)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"no file at {raw_path[:200]!r}") from None
        except (OSError, RuntimeError) as error:
            raise InvalidInput(f"cannot read {raw_path[:200]!r}: {error}") from None
        if not any(resolved.is_relative_to(root) for root in self._import_roots):
            raise Forbidden(f"{raw_path[:200]!r} is outside the allowed import roots")
        if not resolved.is_file():
            raise Unprocessable(f"{raw_path[:200]!r} is not a regular file")
        return resolved

    async def _announce(self, item: StoredItem, *, source: str) -> None:
        await self._publisher.event(CacheStored.of(item, source=source))
