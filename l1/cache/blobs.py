"""The blob tier: the cache every host shares, a bucket of JetStream's object store
(replicated like the streams). Each host keeps its local content-addressed cache in
front of it; items move between hosts through it by content hash.

What comes from the tier is streamed to disk (memory stays flat however large it is)
and hashed as it arrives: only bytes whose SHA3-256 is the name they were asked for
are kept. What goes into it is hashed as it is read, so a local copy gone bad never
reaches the other hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, BinaryIO

import nats.errors
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    ObjectInfo,
    ObjectMeta,
    ObjectMetaOptions,
    ObjectStoreConfig,
    StorageType,
)
from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectDeletedError

from l1.events.consumer import quietly
from l1.identifiers import new_hasher
from l1.schemas import StoredItem

if TYPE_CHECKING:
    from pathlib import Path

    from nats.js import JetStreamContext
    from nats.js.object_store import ObjectStore

    from l1.cache.incoming import Incoming

__all__ = ["BUCKET", "BlobCorrupt", "BlobTier"]

log = logging.getLogger(__name__)

BUCKET = "l1-blobs"
# Under the servers' max_payload (1 MB in nats.conf), with room for the headers.
CHUNK = 512 << 10
# Chunks asked for at a time when fetching, and how long the tier may stay silent.
WINDOW = 8
IDLE = 30.0
_GONE = (NotFoundError, ObjectDeletedError)


class BlobCorrupt(Exception):
    """Bytes that are not what their content hash says (in the tier or on the way)."""


class BlobTier:
    """Puts, fetches and deletes items in the shared bucket, by content hash."""

    def __init__(self, js: JetStreamContext, *, replicas: int = 1) -> None:
        self._js = js
        self._replicas = replicas
        self._bucket: ObjectStore | None = None

    async def open(self) -> None:
        """Bind to the bucket, creating it the first time."""
        try:
            self._bucket = await self._js.object_store(BUCKET)
        except BucketNotFoundError:
            config = ObjectStoreConfig(
                bucket=BUCKET, storage=StorageType.FILE, replicas=self._replicas
            )
            self._bucket = await self._js.create_object_store(BUCKET, config)

    @property
    def bucket(self) -> ObjectStore:
        assert self._bucket is not None, "open() the tier first"
        return self._bucket

    async def has(self, content_hash: str) -> bool:
        """True when the tier holds ``content_hash``."""
        try:
            info = await self.bucket.get_info(content_hash)
        except _GONE:
            return False
        return not info.deleted

    async def put(self, path: Path, content_hash: str, *, content_type: str) -> None:
        """Copy the local file ``path`` (whose content hash is ``content_hash``) into the
        tier, unless it holds it already. :class:`BlobCorrupt` (and nothing kept) when
        the file's bytes are not what the hash says."""
        if await self.has(content_hash):
            return
        meta = ObjectMeta(
            name=content_hash,
            description=content_type,
            options=ObjectMetaOptions(max_chunk_size=CHUNK),
        )
        with path.open("rb") as file:
            reader = _HashingReader(file)
            await self.bucket.put(content_hash, reader, meta=meta)  # type: ignore[arg-type]
        if reader.content_hash != content_hash:
            await self.delete(content_hash)
            raise BlobCorrupt(f"{path} is not {content_hash}: it was not put in the tier")

    async def describe(self, content_hash: str) -> StoredItem | None:
        """Size and media type of ``content_hash`` as the tier keeps them, or None."""
        try:
            info = await self.bucket.get_info(content_hash)
        except _GONE:
            return None
        if info.deleted:
            return None
        return StoredItem(
            content_hash=content_hash,
            size=info.size or 0,
            content_type=info.description or "application/octet-stream",
        )

    async def fetch(self, content_hash: str, into: Incoming) -> bool:
        """Stream ``content_hash`` from the tier into ``into`` (hashed as it arrives);
        False when the tier does not hold it. :class:`BlobCorrupt` when what arrived is
        not what the hash says, and nats' TimeoutError when the tier stops sending for
        :data:`IDLE` seconds: either way the caller keeps none of it."""
        try:
            info = await self.bucket.get_info(content_hash)
        except _GONE:
            return False
        if info.deleted:
            return False
        if info.size:
            await self._receive(info, into)
        if into.content_hash != content_hash:
            log.error("the tier's copy of %s is not what its name says", content_hash)
            raise BlobCorrupt(f"the tier's copy of {content_hash} does not hash to its name")
        return True

    async def _receive(self, info: ObjectInfo, into: Incoming) -> None:
        # A pull consumer of the object's chunks, :data:`WINDOW` at a time: at most that
        # much is ever held in memory, whatever the size of the object.
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.ALL,
            mem_storage=True,
            num_replicas=1,
            inactive_threshold=IDLE,
        )
        chunks = await self._js.pull_subscribe(
            f"$O.{BUCKET}.C.{info.nuid}", stream=f"OBJ_{BUCKET}", config=config
        )
        try:
            received = 0
            while received < (info.size or 0):
                batch = [msg.data for msg in await chunks.fetch(WINDOW, timeout=IDLE)]
                if not batch:  # nats-py may end a silent wait with nothing rather than raise
                    raise nats.errors.TimeoutError
                await asyncio.to_thread(_write_all, into, batch)
                received += sum(len(data) for data in batch)
        finally:
            await quietly(chunks.unsubscribe())

    async def delete(self, content_hash: str) -> None:
        """Remove ``content_hash`` from the tier (nothing if it holds none)."""
        with contextlib.suppress(*_GONE):
            await self.bucket.delete(content_hash)

    async def names(self) -> set[str]:
        """Every content hash the tier holds."""
        try:
            infos = await self.bucket.list(ignore_deletes=True)
        except _GONE:  # an empty bucket answers "not found"
            return set()
        return {info.name for info in infos if info.name and not info.deleted}


def _write_all(into: Incoming, blocks: list[bytes]) -> None:
    for block in blocks:
        into.write(block)


class _HashingReader:
    """A file read through for the tier, hashed as it goes."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._hasher = new_hasher()

    def readinto(self, buffer: bytearray) -> int:
        count = self._file.readinto(buffer)  # type: ignore[attr-defined]
        if count:
            self._hasher.update(memoryview(buffer)[:count])
        return int(count or 0)

    @property
    def content_hash(self) -> str:
        return self._hasher.hexdigest()
