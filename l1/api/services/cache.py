"""The cache as the API offers it: import, upload, list, download and provenance."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from l1.errors import Conflict, Forbidden, InvalidInput, NotFound, TooLarge, Unprocessable
from l1.events.schemas import CacheStored

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Sequence

    from l1.cache.index import CacheIndex, CacheItem
    from l1.cache.items import Items
    from l1.cache.references import References
    from l1.cache.store import Incoming
    from l1.events.publisher import Publisher
    from l1.schemas import Page, Provenance, StoredItem

# How long storing an item waits for a deletion of the same item to finish.
DELETION_WAIT = 10.0

__all__ = ["CacheService"]


class CacheService:
    """Puts items into the content-addressed store and reads them back."""

    def __init__(
        self,
        *,
        items: Items,
        index: CacheIndex,
        references: References,
        publisher: Publisher,
        import_roots: Sequence[Path],
        max_upload_bytes: int,
        max_import_bytes: int,
    ) -> None:
        self._items = items
        self._store = items.store
        self._index = index
        self._references = references
        self._publisher = publisher
        self._import_roots = [root.resolve() for root in import_roots]
        self.max_upload_bytes = max_upload_bytes
        self._max_import_bytes = max_import_bytes

    async def import_path(self, raw_path: str) -> StoredItem:
        """Store a file from the server's filesystem, if it lies under an import root
        and within ``L1_MAX_IMPORT_BYTES``."""
        path = await asyncio.to_thread(self._allowed_path, raw_path)
        limit = self._max_import_bytes
        if (await asyncio.to_thread(path.stat)).st_size > limit:
            raise TooLarge(f"{_shown(raw_path)} is larger than the import limit of {limit} bytes")
        incoming = await asyncio.to_thread(self._store.receive_file, path, max_bytes=limit)
        return await self._keep(incoming, source="import")

    async def upload(self, chunks: AsyncIterable[bytes]) -> StoredItem:
        """Store an uploaded stream, up to ``max_upload_bytes``."""
        incoming = await self._store.receive_stream(chunks, max_bytes=self.max_upload_bytes)
        return await self._keep(incoming, source="upload")

    async def store_file(self, path: Path, *, source: str) -> StoredItem:
        """Store a file the server itself provides (the shipped assets)."""
        incoming = await asyncio.to_thread(self._store.receive_file, path)
        return await self._keep(incoming, source=source)

    async def _keep(self, incoming: Incoming, *, source: str) -> StoredItem:
        """Commit a received file, share it with the other hosts (the blob tier) and
        announce it, holding the item meanwhile: a deletion of the same item runs wholly
        before or wholly after, so the stores, the index and the events agree whatever
        the interleaving."""
        holder = f"storing:{uuid.uuid4().hex}"
        content_hash = incoming.content_hash
        try:
            await self._hold(holder, content_hash)
            item = await asyncio.to_thread(self._store.commit, incoming)
            await self._items.share(item)
            await self._publisher.event(CacheStored.of(item, source=source))
        except BaseException:
            await asyncio.to_thread(self._store.discard, incoming)
            raise
        finally:
            await self._references.release(holder, [content_hash])
        return item

    async def _hold(self, holder: str, content_hash: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DELETION_WAIT
        while await self._references.hold(holder, [content_hash]) is not None:
            if loop.time() > deadline:
                raise Conflict(f"{content_hash} is being deleted; send it again shortly")
            await asyncio.sleep(0.05)  # a deletion takes milliseconds

    async def page(self, *, limit: int, cursor: str | None) -> Page[CacheItem]:
        """Stored items, most recent first."""
        return await self._index.page(limit=limit, cursor=cursor)

    async def locate(self, content_hash: str) -> tuple[Path, StoredItem]:
        """The file of an item on this host (fetched from the blob tier if it is not
        here yet) and its description; :class:`NotFound` if the cache holds none."""
        path = await self._items.local_path(content_hash)
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
            raise InvalidInput(f"path must be absolute: {_shown(raw_path)}")
        try:
            # Resolve symlinks and '..' before the check, so neither can escape a root.
            resolved = candidate.resolve(strict=True)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"no file at {_shown(raw_path)}") from None
        except (OSError, RuntimeError) as error:
            raise InvalidInput(f"cannot read {_shown(raw_path)}: {error}") from None
        if not any(resolved.is_relative_to(root) for root in self._import_roots):
            raise Forbidden(f"{_shown(raw_path)} is outside the allowed import roots")
        if not resolved.is_file():
            raise Unprocessable(f"{_shown(raw_path)} is not a regular file")
        return resolved


def _shown(raw_path: str) -> str:
    """A path as an error message may quote it: cut short."""
    return repr(raw_path if len(raw_path) <= 200 else raw_path[:199] + "…")
