"""Reading every copy in a host's store through now and then, to find the ones that no
longer hash to their name.

A stored file is sealed (:mod:`l1.cache.store`): its size and modification time, kept in
an extended attribute, are checked whenever it is opened, which catches a file rewritten
through the file system at the cost of a ``stat``. It cannot catch bits rotting in
place, or a file edited with its size and modification time put back: only reading it
through can. The scrubber does that on every host, one machine or a fleet's, at a
bounded rate (``L1_SCRUB_BYTES_PER_SECOND``; 0 turns it off): a pass over every copy, in
name order, starts at most every :data:`PASS_EVERY` seconds, and a pass cut short (a
restart) goes on where it stopped. One process per cache directory scrubs, the one
holding ``scrub.lock``; the others on the host stand by in case it goes away.

A copy that does not hash to its name is moved to ``damaged/``, and never served or
rendered from again. With the blob tier on, the host fetches the item from the tier
again at once. On one machine there is no other copy: the item is lost, which the log
says at once and the index repair (:mod:`l1.cache.repair`) records in the cache index.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import msgspec

from l1.errors import L1Error
from l1.identifiers import is_content_hash, new_hasher

if TYPE_CHECKING:
    import hashlib
    from pathlib import Path

    from l1.cache.items import Items

__all__ = ["PASS_EVERY", "ScrubReport", "Scrubber"]

log = logging.getLogger(__name__)

# A pass starts at most this often: a cache read through in less time is read once an
# hour, a larger one all the time at the rate set.
PASS_EVERY = 3600.0
# The first pass waits this long after the process starts, out of start-up's way.
START_AFTER = 60.0
# How often a process standing by tries to take over the scrubbing.
STANDBY_CHECK = 60.0
BLOCK = 1 << 20
# How often the position reached is written down (and at the end of every pass).
SAVE_EVERY = 30.0
DAMAGED = "no longer hashes to its name (found by the scrubber)"


class ScrubReport(msgspec.Struct, kw_only=True):
    """What one pass did."""

    checked: int = 0
    bytes: int = 0
    damaged: list[str] = msgspec.field(default_factory=list)
    complete: bool = True  # False when stopped part-way


class Scrubber:
    """Re-hashes this host's copies at a bounded rate and sets aside the damaged ones."""

    def __init__(self, items: Items, *, bytes_per_second: int) -> None:
        self._items = items
        self._store = items.store
        self._rate = max(bytes_per_second, 0)
        self._lock_path = items.store.root / "scrub.lock"
        self._position_path = items.store.root / "scrub.position"

    async def run(self, stop: asyncio.Event) -> None:
        """Scrub, a pass at most every :data:`PASS_EVERY` seconds, until ``stop`` is set
        (nothing when the rate is 0); stand by while another process scrubs here."""
        if not self._rate or await _waited_out(stop, START_AFTER):
            return
        lock: int | None = None
        try:
            while lock is None:
                lock = await asyncio.to_thread(self._claim)
                if lock is None and await _waited_out(stop, STANDBY_CHECK):
                    return
            while not stop.is_set():
                began = time.monotonic()
                try:
                    report = await self.once(stop)
                except OSError as error:  # the disk itself failing: try again next time
                    log.warning("a scrub pass stopped: %s", error)
                except Exception:  # a bug here must not take the process's work with it
                    log.exception("a scrub pass failed")
                else:
                    log.info(
                        "scrubbed %d copies (%d bytes), %d damaged",
                        report.checked,
                        report.bytes,
                        len(report.damaged),
                    )
                if await _waited_out(stop, PASS_EVERY - (time.monotonic() - began)):
                    return
        finally:
            if lock is not None:
                os.close(lock)

    async def once(self, stop: asyncio.Event | None = None) -> ScrubReport:
        """One pass over every copy, going on after the last one checked, at the rate set
        (as fast as the disk goes when it is 0); stops early when ``stop`` is set."""
        after = await asyncio.to_thread(self._saved_position)
        pace = _Pace(self._rate)
        report = ScrubReport()
        saved = time.monotonic()
        async for name in self._in_turn(after):
            intact = await self._check(name, pace, stop)
            if intact is None and stop is not None and stop.is_set():
                report.complete = False
                break
            if intact is not None:
                report.checked += 1
            if intact is False:
                report.damaged.append(name)
                await self._damaged(name)
            if time.monotonic() - saved > SAVE_EVERY:
                await asyncio.to_thread(self._save_position, name)
                saved = time.monotonic()
            after = name
        report.bytes = pace.spent
        await asyncio.to_thread(self._save_position, after)
        return report

    async def _in_turn(self, after: str) -> AsyncIterator[str]:
        """Every stored hash once, in name order from the first after ``after`` round to
        ``after`` itself; a directory of them listed at a time, not the whole store."""
        shards = await asyncio.to_thread(self._store.shards)
        first = after[:2]
        for shard in [s for s in shards if s >= first] + [s for s in shards if s < first]:
            names = await asyncio.to_thread(self._store.hashes_in, shard)
            for name in names if shard != first else [n for n in names if n > after]:
                yield name
        if first:  # round again to where the last pass stopped
            for name in await asyncio.to_thread(self._store.hashes_in, first):
                if name <= after:
                    yield name

    async def _check(self, name: str, pace: _Pace, stop: asyncio.Event | None) -> bool | None:
        """True when the copy hashes to its name, False when it did not (and was set
        aside), None when it is gone or the pass was stopped."""
        path = self._store.path_for(name)
        try:
            reader = await asyncio.to_thread(_open, path)
        except FileNotFoundError:
            return None  # deleted meanwhile
        with reader:
            inode = os.fstat(reader.fileno()).st_ino
            hasher = new_hasher()
            while read := await asyncio.to_thread(_hash_block, reader, hasher):
                if await pace.taken(read, stop):
                    return None
        if hasher.hexdigest() == name:
            return True
        moved = await asyncio.to_thread(self._store.set_aside, name, DAMAGED, inode=inode)
        return False if moved else None

    async def _damaged(self, name: str) -> None:
        """Say what a damaged copy means here, and fetch the item again where it can be."""
        if not self._items.shared:
            log.error(
                "%s was damaged on this host's disk and is lost (set aside in damaged/): "
                "no other copy exists; store the same bytes again to have it back",
                name,
            )
            return
        try:
            await self._items.local_path(name)
        except (L1Error, OSError, TimeoutError) as error:
            log.warning("%s was damaged here and could not be fetched again: %s", name, error)
        else:
            log.warning("%s was damaged on this host's disk: fetched again from the tier", name)

    def _claim(self) -> int | None:
        """The scrubbing lock of this cache directory, or None while another holds it."""
        try:
            fd = os.open(self._lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        except OSError as error:  # a full or read-only disk: try again later
            log.warning("cannot take the scrub lock %s: %s", self._lock_path, error)
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def _saved_position(self) -> str:
        try:
            saved = self._position_path.read_text().strip()
        except FileNotFoundError:
            return ""
        return saved if is_content_hash(saved) else ""

    def _save_position(self, name: str) -> None:
        if not name:
            return
        writing = self._position_path.with_suffix(".new")
        writing.write_text(name)
        os.replace(writing, self._position_path)


class _Pace:
    """Keeps reading at ``rate`` bytes per second on average over a pass."""

    def __init__(self, rate: int) -> None:
        self._rate = rate
        self._began = time.monotonic()
        self.spent = 0

    async def taken(self, read: int, stop: asyncio.Event | None) -> bool:
        """Count ``read`` bytes and wait as long as they are ahead of the rate; True
        when ``stop`` was set."""
        self.spent += read
        if not self._rate:
            return stop is not None and stop.is_set()
        ahead = self.spent / self._rate - (time.monotonic() - self._began)
        if stop is None:
            if ahead > 0:
                await asyncio.sleep(ahead)
            return False
        return await _waited_out(stop, ahead)


def _open(path: Path) -> io.FileIO:
    return io.FileIO(path, "r")


def _hash_block(reader: io.FileIO, hasher: hashlib._Hash) -> int:
    block = reader.read(BLOCK)
    if block:
        hasher.update(block)
    return len(block or b"")


async def _waited_out(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` (not at all when it is not positive); True when ``stop`` was set."""
    if seconds > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()
