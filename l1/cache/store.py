"""The content-addressed store: a file's address is the SHA3-256 of its bytes.

Layout under the cache directory::

    objects/ab/abcdef...   one file per content hash, never modified once written
    tmp/                   writes in progress; renamed into objects/ when complete

Writes go to a temporary file that is fsynced and then renamed, so a reader never
sees a partial file, and the same bytes stored twice are one file.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import filetype
import msgspec
from aiofile import async_open

from l1.errors import InvalidInput, NotFound, TooLarge
from l1.identifiers import is_content_hash, new_hasher

__all__ = ["ContentStore", "StoredItem", "detect_content_type"]

CHUNK = 1 << 20


class StoredItem(msgspec.Struct, frozen=True, kw_only=True):
    """What the store holds at one address."""

    content_hash: str
    size: int
    content_type: str
    created: bool = False


HEAD = 8192  # enough of a file's start to recognise its format


def detect_content_type(path: Path) -> str:
    """The media type of a file, read from its first bytes (never from its name)."""
    with path.open("rb") as file:
        return _media_type(file.read(HEAD))


def _media_type(head: bytes) -> str:
    kind = filetype.guess(head)
    return kind.mime if kind else "application/octet-stream"


class _Digest:
    """Hash, size and first bytes of what is being written, gathered as it streams."""

    def __init__(self) -> None:
        self._hasher = new_hasher()
        self.size = 0
        self.head = b""

    def update(self, chunk: bytes) -> None:
        self._hasher.update(chunk)
        self.size += len(chunk)
        if len(self.head) < HEAD:
            self.head += chunk[: HEAD - len(self.head)]

    @property
    def content_hash(self) -> str:
        return self._hasher.hexdigest()


class ContentStore:
    """A directory of files addressed by the SHA3-256 of their bytes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._objects = root / "objects"
        self._tmp = root / "tmp"
        self._objects.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)

    def path_for(self, content_hash: str) -> Path:
        """Where the object for ``content_hash`` lives; rejects anything that is not a hash."""
        if not is_content_hash(content_hash):
            raise InvalidInput(
                f"{content_hash[:80]!r} is not a content hash (64 lowercase hex characters)"
            )
        return self._objects / content_hash[:2] / content_hash

    def exists(self, content_hash: str) -> bool:
        """True when the store holds ``content_hash``."""
        return self.path_for(content_hash).is_file()

    def open_path(self, content_hash: str) -> Path:
        """The path of a stored object, or :class:`NotFound`."""
        path = self.path_for(content_hash)
        if not path.is_file():
            raise NotFound(f"{content_hash} is not in the cache")
        return path

    def describe(self, content_hash: str) -> StoredItem:
        """Size and media type of a stored object."""
        path = self.open_path(content_hash)
        return StoredItem(
            content_hash=content_hash,
            size=path.stat().st_size,
            content_type=detect_content_type(path),
        )

    def stored_hash_of(self, path: Path) -> str | None:
        """The hash of ``path`` when it is already one of the store's objects."""
        if path.parent.parent == self._objects and is_content_hash(path.name):
            return path.name
        return None

    def put_file(self, source: Path) -> StoredItem:
        """Copy ``source`` into the store, hashing as it streams. Blocking: run in a thread."""
        known = self.stored_hash_of(source)
        if known is not None:
            return self.describe(known)
        with source.open("rb") as reader, self._temporary() as (tmp_path, writer):
            digest = _Digest()
            while chunk := reader.read(CHUNK):
                digest.update(chunk)
                writer.write(chunk)
            return self._commit(tmp_path, writer, digest)

    def put_bytes(self, data: bytes) -> StoredItem:
        """Store ``data``. Blocking: run in a thread for anything large."""
        with self._temporary() as (tmp_path, writer):
            writer.write(data)
            digest = _Digest()
            digest.update(data)
            return self._commit(tmp_path, writer, digest)

    async def put_stream(self, chunks: AsyncIterable[bytes], *, max_bytes: int) -> StoredItem:
        """Store a stream of chunks without holding it in memory; :class:`TooLarge` past
        ``max_bytes``, in which case nothing is kept."""
        # File-system calls that may block (creating, fsyncing, renaming) run in a
        # thread: the event loop serving other requests never waits on the disk.
        tmp_path = await asyncio.to_thread(self._new_temporary)
        try:
            digest = _Digest()
            async with async_open(tmp_path, "wb") as writer:
                async for chunk in chunks:
                    digest.update(chunk)
                    if digest.size > max_bytes:
                        raise TooLarge(f"upload is larger than the limit of {max_bytes} bytes")
                    await writer.write(chunk)
                await writer.flush(sync_metadata=True)
            return await asyncio.to_thread(self._place, tmp_path, digest)
        finally:
            await asyncio.to_thread(tmp_path.unlink, missing_ok=True)

    def _new_temporary(self) -> Path:
        fd, name = tempfile.mkstemp(dir=self._tmp)
        os.close(fd)
        return Path(name)

    def delete(self, content_hash: str) -> bool:
        """Remove an object; True if it was there."""
        path = self.path_for(content_hash)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def iter_hashes(self) -> Iterator[str]:
        """Every hash the store holds, in no particular order."""
        for shard in self._objects.iterdir():
            for entry in shard.iterdir():
                if is_content_hash(entry.name):
                    yield entry.name

    @contextmanager
    def _temporary(self) -> Iterator[tuple[Path, BinaryIO]]:
        fd, name = tempfile.mkstemp(dir=self._tmp)
        tmp_path = Path(name)
        try:
            with os.fdopen(fd, "wb") as writer:
                yield tmp_path, writer
        finally:
            tmp_path.unlink(missing_ok=True)

    def _commit(self, tmp_path: Path, writer: BinaryIO, digest: _Digest) -> StoredItem:
        writer.flush()
        os.fsync(writer.fileno())
        return self._place(tmp_path, digest)

    def _place(self, tmp_path: Path, digest: _Digest) -> StoredItem:
        final = self.path_for(digest.content_hash)
        created = not final.exists()
        if created:
            final.parent.mkdir(exist_ok=True)
            os.chmod(tmp_path, 0o444)
            # rename is atomic: readers see nothing or the whole file.
            os.replace(tmp_path, final)
            _fsync_dir(final.parent)
        return StoredItem(
            content_hash=digest.content_hash,
            size=digest.size,
            content_type=_media_type(digest.head),
            created=created,
        )


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
