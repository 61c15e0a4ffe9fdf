"""Bytes on their way into the content-addressed store, written to a scratch file and
hashed in one pass, so that storing a file costs about what hashing it does.

Whatever the bytes come from (a file on this host, an upload, the blob tier), they are
gathered into a few page-aligned blocks that are used again and again: a full block is
hashed on one core while another thread writes it to the disk directly (``O_DIRECT``),
past the page cache. Neither the copy nor the hash then waits for the kernel to find
fresh memory for a second copy of the file in its cache, which on a machine short of
free pages (or a virtual machine whose host takes free pages back) costs more than the
hash itself; and a large import does not push out of the cache what is used. Where a
file system does not take direct writes, the same blocks are written through the cache.
"""

from __future__ import annotations

import asyncio
import errno
import io
import mmap
import os
from collections import deque
from collections.abc import AsyncIterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import filetype

from l1.errors import TooLarge
from l1.identifiers import new_hasher

__all__ = ["BLOCK", "HEAD", "Incoming", "media_type"]

# Bytes hashed and written at a time: large enough for the disk to take at full speed.
BLOCK = 4 << 20
# Blocks per file: one being filled, one hashed, one written.
BLOCKS = 3
# Direct writes start and end on multiples of this (the largest logical block size in
# use); only a file's last few bytes go through the page cache.
ALIGN = 4096
HEAD = 8192  # enough of a file's start to recognise its format


def media_type(head: bytes) -> str:
    """The media type told by a file's first bytes (never by its name)."""
    kind = filetype.guess(head)
    return kind.mime if kind else "application/octet-stream"


class Incoming:
    """One file being received: its scratch copy, hash, size and first bytes.

    ``write`` and ``copy_from`` block (run them in a thread); the async ``receive``
    takes a stream.
    """

    def __init__(self, path: Path, *, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.size = 0
        self.head = b""
        self._hasher = new_hasher()
        self._scratch = _ScratchFile(path)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="l1-store")
        self._writing: deque[tuple[Future[None], _Block]] = deque()
        self._spare: list[_Block] = []
        self._blocks = 1
        self._block = _Block()

    @property
    def content_hash(self) -> str:
        """SHA3-256 of everything written so far (the block being filled included)."""
        hasher = self._hasher.copy()
        hasher.update(self._block.data())
        return hasher.hexdigest()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Add ``data``: :class:`TooLarge` past ``max_bytes`` (nothing more is written)."""
        view = memoryview(data)
        while view:
            taken = self._block.fill(view)
            self._took(self._block.last(taken))
            view = view[taken:]

    def copy_from(self, source: io.RawIOBase) -> None:
        """Write everything ``source`` holds, read straight into the blocks."""
        while got := source.readinto(self._block.room()):
            self._block.filled += got
            self._took(self._block.last(got))

    async def receive(self, chunks: AsyncIterable[bytes]) -> None:
        """Write a stream of chunks, a block's worth at a time in a thread while the next
        arrives; :class:`TooLarge` as soon as the stream passes ``max_bytes``."""
        pending: asyncio.Future[None] | None = None
        batch: list[bytes] = []  # kept as they came: joining them would copy them again
        batched = 0
        try:
            async for chunk in chunks:
                batched += len(chunk)
                if self.size + batched > self.max_bytes:
                    raise TooLarge(f"the item is larger than the limit of {self.max_bytes} bytes")
                batch.append(chunk)
                if batched >= BLOCK:
                    if pending is not None:
                        await pending
                    pending = asyncio.ensure_future(asyncio.to_thread(self._write_all, batch))
                    batch, batched = [], 0
            if pending is not None:
                await pending
                pending = None
            if batch:
                await asyncio.to_thread(self._write_all, batch)
        finally:
            if pending is not None:  # failed part-way: let the thread finish with the file
                await asyncio.wait([pending])

    def finish(self) -> None:
        """Write what is left, make it all durable (one fsync) and close the file."""
        if self._block.filled:
            self._send()
        self._settle()
        self._scratch.sync()
        self.close()

    def close(self) -> None:
        """Close the file (it stays where it is)."""
        self._writer.shutdown(wait=True)
        self._writing.clear()
        self._scratch.close()

    def _write_all(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _took(self, data: memoryview) -> None:
        """Account for ``data``, just added to the block; send the block once full."""
        self.size += len(data)
        if self.size > self.max_bytes:
            raise TooLarge(f"the item is larger than the limit of {self.max_bytes} bytes")
        if len(self.head) < HEAD:
            self.head += data[: HEAD - len(self.head)].tobytes()
        if self._block.full:
            self._send()
            self._block = self._next_block()

    def _send(self) -> None:
        """Write the current block in the writer thread while this one hashes it (both
        let go of the GIL): what is hashed is what is written."""
        block = self._block
        self._writing.append((self._writer.submit(self._scratch.append, block.data()), block))
        self._hasher.update(block.data())

    def _next_block(self) -> _Block:
        if self._spare:
            return self._spare.pop()
        if self._blocks < BLOCKS:
            self._blocks += 1
            return _Block()
        return self._written()

    def _settle(self) -> None:
        """Wait for every block being written (raising what a write raised)."""
        while self._writing:
            self._spare.append(self._written())

    def _written(self) -> _Block:
        """The oldest block being written, once it is (raising what the write raised)."""
        writing, block = self._writing.popleft()
        writing.result()
        block.filled = 0
        return block


class _Block:
    """A page-aligned buffer of :data:`BLOCK` bytes, filled from the start."""

    def __init__(self) -> None:
        self._memory = mmap.mmap(-1, BLOCK)
        self._view = memoryview(self._memory)
        self.filled = 0

    @property
    def full(self) -> bool:
        return self.filled == BLOCK

    def room(self) -> memoryview:
        """The part not filled yet."""
        return self._view[self.filled :]

    def fill(self, data: memoryview) -> int:
        """Copy in as much of ``data`` as fits; how much that was."""
        taken = min(len(data), BLOCK - self.filled)
        self._view[self.filled : self.filled + taken] = data[:taken]
        self.filled += taken
        return taken

    def last(self, count: int) -> memoryview:
        """The ``count`` bytes filled last."""
        return self._view[self.filled - count : self.filled]

    def data(self) -> memoryview:
        """What the block holds."""
        return self._view[: self.filled]


class _ScratchFile:
    """The scratch file, written block after block: directly where the file system
    allows (whole multiples of :data:`ALIGN`), the rest through the page cache."""

    def __init__(self, path: Path) -> None:
        self._cached = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        self._direct: int | None
        try:
            self._direct = os.open(path, os.O_WRONLY | os.O_DIRECT)
        except OSError as error:
            if error.errno != errno.EINVAL:  # EINVAL: no direct writes on this file system
                raise
            self._direct = None
        self._offset = 0
        self._closed = False

    def append(self, data: memoryview) -> None:
        """Write ``data`` at the end. Blocking: the writer thread calls it."""
        start = self._offset
        if self._direct is not None:
            try:
                self._write_all(self._direct, data[: len(data) - len(data) % ALIGN])
            except OSError as error:
                if error.errno != errno.EINVAL:
                    raise
                self._stop_direct()  # refused after all: some file systems decide per write
        self._write_all(self._cached, data[self._offset - start :])

    def sync(self) -> None:
        """Make the file durable: its data, wherever it went, and its size."""
        os.fsync(self._cached)

    def close(self) -> None:
        """Close both descriptors (once: closing again does nothing)."""
        self._stop_direct()
        if not self._closed:
            self._closed = True
            os.close(self._cached)

    def _write_all(self, fd: int, data: memoryview) -> None:
        while data:
            written = os.pwrite(fd, data, self._offset)
            self._offset += written
            data = data[written:]

    def _stop_direct(self) -> None:
        if self._direct is not None:
            os.close(self._direct)
            self._direct = None
