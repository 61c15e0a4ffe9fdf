"""Bytes on their way into the content-addressed store, written to a scratch file and
hashed in one pass, so that storing a file costs about what hashing it does.

Whatever the bytes come from (a file on this host, an upload, the blob tier), the
caller's thread hashes them as they come while a writer thread gathers them into one
page-aligned block and writes each full block to the disk directly (``O_DIRECT``), past
the page cache. Neither waits for the kernel to find fresh memory for a second copy of
the file in its cache, which on a machine short of free pages (or a virtual machine
whose host takes free pages back) costs more than the hash itself; and a large import
does not push what is in use out of the cache. Where a file system does not take direct
writes, the same blocks go through the cache.
"""

from __future__ import annotations

import asyncio
import errno
import io
import mmap
import os
from collections import deque
from collections.abc import AsyncIterable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import filetype

from l1.errors import TooLarge
from l1.identifiers import new_hasher

__all__ = ["BLOCK", "HEAD", "Incoming", "media_type"]

# Bytes written at a time: large enough for the disk to take them at full speed.
BLOCK = 4 << 20
# Blocks' worth handed to the writer and not yet written, at most: the caller waits
# beyond that (what is handed over is held in memory until it is written).
AHEAD = 2
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
        self._writing: deque[Future[None]] = deque()
        self._gathered: list[bytes] = []  # handed to the writer with the next block
        self._gathered_bytes = 0

    @property
    def content_hash(self) -> str:
        """SHA3-256 of everything written so far."""
        return self._hasher.hexdigest()

    def write(self, data: bytes) -> None:
        """Add ``data`` (hashed here, written by the writer thread: it must not change);
        :class:`TooLarge` past ``max_bytes`` (nothing more is written)."""
        self.size += len(data)
        if self.size > self.max_bytes:
            raise TooLarge(f"the item is larger than the limit of {self.max_bytes} bytes")
        if len(self.head) < HEAD:
            self.head += data[: HEAD - len(self.head)]
        self._hasher.update(data)
        self._gathered.append(data)
        self._gathered_bytes += len(data)
        if self._gathered_bytes >= BLOCK:
            self._hand_over()

    def copy_from(self, source: io.RawIOBase) -> None:
        """Write everything ``source`` holds, a block at a time."""
        with closing(_blocks(source)) as blocks:
            for block in blocks:
                self.write(block)

    async def receive(self, chunks: AsyncIterable[bytes]) -> None:
        """Write a stream of chunks, a block's worth at a time in a thread of its own,
        with the next already queued behind it (the thread never waits for this loop);
        :class:`TooLarge` as soon as the stream passes ``max_bytes``."""
        loop = asyncio.get_running_loop()
        hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="l1-hash")
        queued: deque[asyncio.Future[None]] = deque()
        batch: list[bytes] = []
        batched = 0
        try:
            async for chunk in chunks:
                batched += len(chunk)
                if self.size + batched > self.max_bytes:
                    raise TooLarge(f"the item is larger than the limit of {self.max_bytes} bytes")
                batch.append(chunk)
                if batched >= BLOCK:
                    if len(queued) >= AHEAD:
                        await queued.popleft()
                    # Joined here, where there is time to spare: one piece is hashed
                    # without a pause between chunks for this thread to take the GIL.
                    queued.append(loop.run_in_executor(hashing, self.write, b"".join(batch)))
                    batch, batched = [], 0
            queued.append(loop.run_in_executor(hashing, self.write, b"".join(batch)))
            while queued:
                await queued.popleft()
        finally:
            if queued:  # failed part-way: let the thread finish with the file
                await asyncio.wait(queued)
                for rest in queued:
                    rest.exception()  # retrieved: the first failure is the one raised
            hashing.shutdown(wait=False)

    def finish(self) -> None:
        """Write what is left, make it all durable (one fsync) and close the file."""
        self._hand_over()
        self._writing.append(self._writer.submit(self._scratch.flush))
        while self._writing:
            self._writing.popleft().result()  # raising what a write raised
        self._scratch.sync()
        self.close()

    def close(self) -> None:
        """Close the file (it stays where it is)."""
        self._writer.shutdown(wait=True)
        self._writing.clear()
        self._scratch.close()

    def _hand_over(self) -> None:
        """Give the writer what was gathered, once it has room for it."""
        while len(self._writing) >= AHEAD:
            self._writing.popleft().result()  # raising what the write raised
        gathered, self._gathered, self._gathered_bytes = self._gathered, [], 0
        self._writing.append(self._writer.submit(self._scratch.append, gathered))


def _blocks(source: io.RawIOBase) -> Generator[bytes, None, None]:
    """The blocks ``source`` holds; past a first full one, each is read in another
    thread while the one before is used (a small file costs no thread)."""
    first = source.read(BLOCK)
    if not first:
        return
    yield first
    if len(first) < BLOCK:
        while block := source.read(BLOCK):
            yield block
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="l1-read") as reader:
        ahead = reader.submit(source.read, BLOCK)
        while block := ahead.result():
            ahead = reader.submit(source.read, BLOCK)
            yield block


class _ScratchFile:
    """The scratch file, written by one thread a block at a time from a page-aligned
    buffer: directly where the file system allows, else through the page cache."""

    def __init__(self, path: Path) -> None:
        self._cached = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        self._direct: int | None
        try:
            self._direct = os.open(path, os.O_WRONLY | os.O_DIRECT)
        except OSError as error:
            if error.errno != errno.EINVAL:  # EINVAL: no direct writes on this file system
                raise
            self._direct = None
        self._block = mmap.mmap(-1, BLOCK)  # page-aligned, and the same pages every time
        self._filled = 0
        self._offset = 0
        self._closed = False

    def append(self, pieces: list[bytes]) -> None:
        """Add ``pieces``, writing each block as it fills."""
        with memoryview(self._block) as block:
            for piece in pieces:
                with memoryview(piece) as rest:
                    while rest:
                        taken = min(len(rest), BLOCK - self._filled)
                        block[self._filled : self._filled + taken] = rest[:taken]
                        self._filled += taken
                        rest = rest[taken:]
                        if self._filled == BLOCK:
                            self._write(block)

    def flush(self) -> None:
        """Write the part of a block still held (the file's end)."""
        if self._filled:
            with memoryview(self._block) as block:
                self._write(block[: self._filled])

    def sync(self) -> None:
        """Make the file durable: its data, wherever it went, and its size."""
        os.fsync(self._cached)

    def close(self) -> None:
        """Close both descriptors (once: closing again does nothing)."""
        self._stop_direct()
        if not self._closed:
            self._closed = True
            os.close(self._cached)

    def _write(self, data: memoryview) -> None:
        start = self._offset
        if self._direct is not None:
            try:
                self._write_all(self._direct, data[: len(data) - len(data) % ALIGN])
            except OSError as error:
                if error.errno != errno.EINVAL:
                    raise
                self._stop_direct()  # refused after all: some file systems decide per write
        self._write_all(self._cached, data[self._offset - start :])
        self._filled = 0

    def _write_all(self, fd: int, data: memoryview) -> None:
        while data:
            written = os.pwrite(fd, data, self._offset)
            self._offset += written
            data = data[written:]

    def _stop_direct(self) -> None:
        if self._direct is not None:
            os.close(self._direct)
            self._direct = None
