"""Thumbnails for the dashboard, made once per item and kept beside the cache.

Each is made in a thumbnail process (:mod:`l1.cache.thumbnails`), never in the API:
the media is untrusted. At most ``processes`` thumbnails are made at a time, each
under a time limit (past it, its process is killed and replaced) and a memory limit.
Requests beyond those wait in a bounded line, and no longer than the time limit; an
item of which no thumbnail could be made is remembered for a while, so that a hostile
file is not decoded again on every request. Thumbnails are kept under
``$L1_CACHE_DIR/thumbs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from l1.cache.thumbnails import FRAME_LENGTH, ThumbnailJob, ThumbnailOutcome, encode_frame
from l1.events import subjects
from l1.identifiers import is_content_hash

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.aio.msg import Msg

__all__ = ["ThumbnailRefused", "Thumbnails", "ThumbnailsUnavailable", "kind_of"]

# Renders go to the workers; the API only ever needs a little help with pictures.
POOL_SIZE = 2
# Requests for thumbnails not yet begun, beyond which the next is answered at once.
MAX_WAITING = 32
# How long an item of which no thumbnail could be made is not tried again, and how
# many such items are remembered.
REMEMBER_FOR = 600.0
REMEMBERED = 10_000
# A thumbnail process imports PIL and PyAV before it is ready.
START_WITHIN = 10.0
# An answer from a thumbnail process is a few hundred bytes; past this it is garbled.
MOST_REPLY = 1 << 16
# What is kept and shown of why a thumbnail could not be made.
MOST_REASON = 500

_outcome = msgspec.msgpack.Decoder(ThumbnailOutcome)


class ThumbnailRefused(Exception):
    """No thumbnail can be made of the item; the message says why."""


class ThumbnailsUnavailable(Exception):
    """No thumbnail process is free (or none could start): try again shortly."""


def kind_of(content_type: str) -> str | None:
    """``image`` or ``video`` for the media types a thumbnail can be made of."""
    major = content_type.partition("/")[0]
    return major if major in ("image", "video") else None


class Thumbnails:
    """Makes and finds thumbnails."""

    def __init__(
        self,
        root: Path,
        *,
        max_pixels: int,
        seconds: float,
        memory: int,
        processes: int = POOL_SIZE,
        waiting: int = MAX_WAITING,
    ) -> None:
        self._root = root
        self._max_pixels = max_pixels
        self._seconds = seconds
        self._makers = _Makers(size=processes, memory=memory, waiting=waiting)
        self._making: dict[str, asyncio.Future[None]] = {}
        self._failures = _Failures(REMEMBER_FOR, REMEMBERED)

    def path(self, content_hash: str) -> Path:
        """Where the thumbnail of ``content_hash`` is kept."""
        assert is_content_hash(content_hash)
        return self._root / content_hash[:2] / f"{content_hash}.jpg"

    async def get(self, content_hash: str, source: Path, content_type: str) -> Path | None:
        """The thumbnail of the item at ``source``, made now if it was not yet; None for
        an item that is not a picture. Raises :class:`ThumbnailRefused` when none can
        be made of it and :class:`ThumbnailsUnavailable` when it cannot be made now."""
        target = self.path(content_hash)
        if target.exists():
            return target
        kind = kind_of(content_type)
        if kind is None:
            return None
        if (reason := self._failures.get(content_hash)) is not None:
            raise ThumbnailRefused(reason)
        making = self._making.get(content_hash)
        if making is None:
            making = asyncio.ensure_future(self._make(content_hash, source, target, kind))
            self._making[content_hash] = making
            making.add_done_callback(lambda done: self._made(content_hash, done))
        await asyncio.shield(making)  # one asker leaving does not stop it for the others
        return target

    async def _make(self, content_hash: str, source: Path, target: Path, kind: str) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        job = ThumbnailJob(
            source=str(source),
            target=str(target),
            kind=kind,
            max_pixels=self._max_pixels,
            seconds=self._seconds,
        )
        outcome = await self._makers.make(job, wait=self._seconds)
        if not outcome.made:
            self._failures.add(content_hash, outcome.reason)
            raise ThumbnailRefused(outcome.reason)

    def _made(self, content_hash: str, done: asyncio.Future[None]) -> None:
        self._making.pop(content_hash, None)
        if not done.cancelled():
            done.exception()  # seen, even when every asker has gone

    async def forget_deleted(self, nc: NATS, stop: asyncio.Event) -> None:
        """Remove the thumbnail of each item deleted from the cache, until ``stop``."""

        async def deleted(msg: Msg) -> None:
            content_hash = msg.subject.split(".")[2]  # l1.cache.<hash>.deleted
            if is_content_hash(content_hash):
                self.path(content_hash).unlink(missing_ok=True)

        subscription = await nc.subscribe(subjects.cache_event("*", "deleted"), cb=deleted)
        try:
            await stop.wait()
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    def close(self) -> None:
        """Stop the thumbnail processes, and what they were making."""
        for making in list(self._making.values()):
            making.cancel()
        self._makers.close()


class _Failures:
    """Why no thumbnail could be made of an item, for ``seconds``; the oldest are
    forgotten first past ``most``."""

    def __init__(self, seconds: float, most: int) -> None:
        self._seconds = seconds
        self._most = most
        self._reasons: dict[str, tuple[float, str]] = {}

    def add(self, content_hash: str, reason: str) -> None:
        self._reasons.pop(content_hash, None)
        self._reasons[content_hash] = (time.monotonic() + self._seconds, reason[:MOST_REASON])
        while len(self._reasons) > self._most:
            del self._reasons[next(iter(self._reasons))]

    def get(self, content_hash: str) -> str | None:
        until, reason = self._reasons.get(content_hash, (0.0, ""))
        if until > time.monotonic():
            return reason
        self._reasons.pop(content_hash, None)
        return None


class _Makers:
    """At most ``size`` thumbnail processes, each making one thumbnail at a time. One
    that overran its time, died or ran out of memory is replaced by a new one."""

    def __init__(self, *, size: int, memory: int, waiting: int) -> None:
        self._memory = memory
        self._free = asyncio.Semaphore(size)
        self._waiting = 0
        self._most_waiting = waiting
        self._idle: list[_Maker] = []
        self._busy: set[_Maker] = set()

    async def make(self, job: ThumbnailJob, *, wait: float) -> ThumbnailOutcome:
        """Make ``job``'s thumbnail once a process is free, waiting at most ``wait``
        seconds for one."""
        if self._free.locked() and self._waiting >= self._most_waiting:
            raise ThumbnailsUnavailable("too many thumbnails are waiting; try again shortly")
        self._waiting += 1
        try:
            async with asyncio.timeout(wait):
                await self._free.acquire()
        except TimeoutError:
            raise ThumbnailsUnavailable(
                f"no thumbnail process was free within {wait:g} s; try again shortly"
            ) from None
        finally:
            self._waiting -= 1
        try:
            return await self._run(job)
        finally:
            self._free.release()

    async def _run(self, job: ThumbnailJob) -> ThumbnailOutcome:
        maker = await self._maker()
        self._busy.add(maker)
        outcome = ThumbnailOutcome(made=False, retire=True)
        try:
            outcome = await maker.make(job)
        except TimeoutError:
            reason = f"making it took longer than {job.seconds:g} s; it was stopped"
            outcome = ThumbnailOutcome(made=False, reason=reason, retire=True)
        except (asyncio.IncompleteReadError, ConnectionError, msgspec.DecodeError):
            reason = f"the thumbnail process died ({await maker.ended()})"
            outcome = ThumbnailOutcome(made=False, reason=reason, retire=True)
        finally:
            self._busy.discard(maker)
            if outcome.retire:
                maker.kill()
            else:
                self._idle.append(maker)
        return outcome

    async def _maker(self) -> _Maker:
        """An idle process still alive, or a new one."""
        while self._idle:
            maker = self._idle.pop()
            if maker.alive:
                return maker
        try:
            return await _Maker.start(self._memory)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, msgspec.DecodeError) as error:
            why = "it ended at once" if isinstance(error, EOFError) else repr(error)
            raise ThumbnailsUnavailable(f"no thumbnail process could start: {why}") from None

    def close(self) -> None:
        """Kill every thumbnail process."""
        for maker in [*self._idle, *self._busy]:
            maker.kill()
        self._idle.clear()


class _Maker:
    """One thumbnail process: jobs go to its stdin, outcomes come from its stdout."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    @classmethod
    async def start(cls, memory: int) -> _Maker:
        """A new thumbnail process limited to ``memory`` bytes, once it is ready."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "l1.cache.thumbnails",
            str(memory),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        maker = cls(process)
        try:
            async with asyncio.timeout(START_WITHIN):
                await maker._reply()
        except BaseException:
            maker.kill()
            raise
        return maker

    async def make(self, job: ThumbnailJob) -> ThumbnailOutcome:
        """The outcome of ``job``; raises ``TimeoutError`` past its time limit (the
        process must then be killed), or ``IncompleteReadError`` when the process died."""
        assert self._process.stdin is not None
        self._process.stdin.write(encode_frame(job))
        async with asyncio.timeout(job.seconds):
            await self._process.stdin.drain()
            return await self._reply()

    async def _reply(self) -> ThumbnailOutcome:
        assert self._process.stdout is not None
        header = await self._process.stdout.readexactly(FRAME_LENGTH)
        length = int.from_bytes(header, "big")
        if length > MOST_REPLY:
            raise ConnectionError(f"a reply of {length} bytes")
        return _outcome.decode(await self._process.stdout.readexactly(length))

    async def ended(self) -> str:
        """How the process ended (it is killed if it has not within a second)."""
        try:
            async with asyncio.timeout(1.0):
                code = await self._process.wait()
        except TimeoutError:
            self.kill()
            code = await self._process.wait()
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit status {code}"

    @property
    def alive(self) -> bool:
        """Whether the process has not ended."""
        return self._process.returncode is None

    def kill(self) -> None:
        """Kill the process (the event loop reaps it)."""
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
