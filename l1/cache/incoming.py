"""Bytes on their way into the content-addressed store, written to a scratch file and
hashed in one pass, so that storing a file costs about what hashing it does.

A file on the same file system (an import, a render's output) is copied by the kernel
while the part already copied is hashed where it landed; a stream (an upload) has each
block hashed on one core while another writes the one before. The disk is asked to take
what was written every few MiB (``fdatasync``), so that the last sync finds little left."""

from __future__ import annotations

import asyncio
import errno
import mmap
import os
from collections.abc import AsyncIterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import filetype

from l1.errors import TooLarge
from l1.identifiers import new_hasher

__all__ = ["BLOCK", "HEAD", "Incoming", "media_type"]

# Bytes hashed and written at a time: small enough for a block to stay in the CPU's
# cache between being hashed and being written.
BLOCK = 1 << 20
SYNC_EVERY = 8 << 20  # bytes written between data syncs
COPY_CHUNK = 8 << 20  # bytes the kernel copies at a time
# What the kernel answers when it cannot copy between two files, or map the copy.
_NO_KERNEL_COPY = {
    errno.EXDEV,
    errno.EINVAL,
    errno.ENOSYS,
    errno.EOPNOTSUPP,
    errno.EBADF,
    errno.ENODEV,
}
HEAD = 8192  # enough of a file's start to recognise its format


def media_type(head: bytes) -> str:
    """The media type told by a file's first bytes (never by its name)."""
    kind = filetype.guess(head)
    return kind.mime if kind else "application/octet-stream"


class Incoming:
    """One file being received: its scratch copy, hash, size and first bytes.

    ``write`` blocks (run it in a thread); the async ``receive`` takes a stream.
    """

    def __init__(self, path: Path, *, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.size = 0
        self.head = b""
        self._hasher = new_hasher()
        # Unbuffered: blocks go straight to the kernel, with no copy on the way; readable
        # too, for what the kernel copied in to be hashed where it landed.
        self._file = path.open("w+b", buffering=0)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="l1-store")
        self._writing: Future[None] | None = None  # the block still being written
        self._unsynced = 0

    @property
    def content_hash(self) -> str:
        """SHA3-256 of everything written so far."""
        return self._hasher.hexdigest()

    def write(self, block: bytes | bytearray) -> None:
        """Add ``block``: :class:`TooLarge` past ``max_bytes`` (nothing more is written)."""
        self._grow(len(block))
        if len(self.head) < HEAD:
            self.head += block[: HEAD - len(self.head)]
        # Both release the GIL for large blocks: this block is hashed while it is
        # written, and while the one before it may still be.
        writing = self._writer.submit(self._write_through, block)
        self._hasher.update(block)
        self._settle()
        self._writing = writing

    def _grow(self, added: int) -> None:
        self.size += added
        if self.size > self.max_bytes:
            raise TooLarge(f"the item is larger than the limit of {self.max_bytes} bytes")

    def _settle(self) -> None:
        """Wait for the block being written (raising what the write raised)."""
        if self._writing is not None:
            writing, self._writing = self._writing, None
            writing.result()

    def _write_through(self, block: bytes | bytearray) -> None:
        view = memoryview(block)
        while view:
            view = view[self._file.write(view) :]
        self._unsynced += len(block)
        if self._unsynced >= SYNC_EVERY:  # let the disk take this now
            os.fdatasync(self._file.fileno())
            self._unsynced = 0

    def copy_from(self, source: BinaryIO) -> None:
        """Write everything ``source`` holds: copied by the kernel where it can (within
        one file system), else read a block at a time."""
        try:
            self._copy_in_kernel(source.fileno())
        except OSError as error:
            if self.size or error.errno not in _NO_KERNEL_COPY:
                raise
            self._file.truncate(0)  # whatever the kernel copied before giving up
            self._copy_through(source)

    def _copy_in_kernel(self, source: int) -> None:
        """The kernel copies a chunk while this thread hashes the one before as it landed
        in the scratch file (mapped, not read): what is hashed is what is stored, even
        if ``source`` changes meanwhile, and no byte is copied through this process."""
        target = self._file.fileno()

        def copy(offset: int) -> int:
            copied = 0
            while copied < COPY_CHUNK:
                at = offset + copied
                if not (got := os.copy_file_range(source, target, COPY_CHUNK - copied, at, at)):
                    break
                copied += got
            if copied:
                os.fdatasync(target)
            return copied

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="l1-copy") as copier:
            ahead = copier.submit(copy, 0)
            while copied := ahead.result():
                offset = self.size
                ahead = copier.submit(copy, offset + copied)
                self._hash_landed(offset, copied)
                self._grow(copied)

    def _hash_landed(self, offset: int, length: int) -> None:
        flags = mmap.MAP_SHARED | mmap.MAP_POPULATE
        mapped = mmap.mmap(self._file.fileno(), length, flags, mmap.PROT_READ, offset=offset)
        with mapped, memoryview(mapped) as view:
            if len(self.head) < HEAD:
                self.head += view[: HEAD - len(self.head)].tobytes()
            for start in range(0, length, BLOCK):
                self._hasher.update(view[start : start + BLOCK])

    def _copy_through(self, source: BinaryIO) -> None:
        """Read each block while the one before is hashed and written."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="l1-read") as reader:
            ahead = reader.submit(source.read, BLOCK)
            while block := ahead.result():
                ahead = reader.submit(source.read, BLOCK)
                self.write(block)

    async def receive(self, chunks: AsyncIterable[bytes]) -> None:
        """Write a stream of chunks, a block at a time in a thread, while the next block
        arrives; :class:`TooLarge` as soon as the stream passes ``max_bytes``."""
        pending: asyncio.Future[None] | None = None
        buffer = bytearray()
        try:
            async for chunk in chunks:
                if self.size + len(buffer) + len(chunk) > self.max_bytes:
                    raise TooLarge(f"the item is larger than the limit of {self.max_bytes} bytes")
                buffer += chunk
                if len(buffer) >= BLOCK:
                    if pending is not None:
                        await pending
                    # Handed over whole (no copy); the next block starts a new buffer.
                    pending = asyncio.ensure_future(asyncio.to_thread(self.write, buffer))
                    buffer = bytearray()
            if pending is not None:
                await pending
                pending = None
            if buffer:
                await asyncio.to_thread(self.write, buffer)
        finally:
            if pending is not None:  # failed part-way: let the thread finish with the file
                await asyncio.wait([pending])

    def finish(self) -> None:
        """Make what was written durable (one fsync) and close the file."""
        self._settle()
        os.fsync(self._file.fileno())
        self.close()

    def close(self) -> None:
        """Close the file (it stays where it is)."""
        self._writer.shutdown(wait=True)
        self._writing = None
        self._file.close()
