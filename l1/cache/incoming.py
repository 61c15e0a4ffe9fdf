"""Bytes on their way into the content-addressed store: written to a scratch file and
hashed in one pass, each block hashed on one core while another writes it and has the
disk take it (``fdatasync`` block by block, so that the last sync finds little left),
so that storing a file costs about what hashing it does."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import filetype

from l1.errors import TooLarge
from l1.identifiers import new_hasher

__all__ = ["BLOCK", "HEAD", "Incoming", "media_type"]

BLOCK = 8 << 20  # bytes hashed and written at a time
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
        self._file: BinaryIO = path.open("wb")
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="l1-store")

    @property
    def content_hash(self) -> str:
        """SHA3-256 of everything written so far."""
        return self._hasher.hexdigest()

    def write(self, block: bytes | bytearray) -> None:
        """Add ``block``: :class:`TooLarge` past ``max_bytes`` (nothing more is written)."""
        self.size += len(block)
        if self.size > self.max_bytes:
            raise TooLarge(f"the item is larger than the limit of {self.max_bytes} bytes")
        if len(self.head) < HEAD:
            self.head += block[: HEAD - len(self.head)]
        # Both release the GIL for large blocks: the write and the hash run side by side.
        written = self._writer.submit(self._write_through, block)
        self._hasher.update(block)
        written.result()

    def _write_through(self, block: bytes | bytearray) -> None:
        self._file.write(block)
        if len(block) >= BLOCK:  # more is likely to follow: let the disk take this now
            self._file.flush()
            os.fdatasync(self._file.fileno())

    def copy_from(self, source: BinaryIO) -> None:
        """Write everything ``source`` holds, reading each block while the one before is
        hashed and written."""
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
        self._file.flush()
        os.fsync(self._file.fileno())
        self.close()

    def close(self) -> None:
        """Close the file (it stays where it is)."""
        self._file.close()
        self._writer.shutdown(wait=True)
