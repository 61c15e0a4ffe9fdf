"""The content-addressed store: a file's address is the SHA3-256 of its bytes.

Layout under the cache directory::

    objects/ab/abcdef...   one file per content hash, never modified once written
    tmp/scratch-<pid>-*/   each process's writes in progress, renamed into objects/
                           when complete; locked while the process lives

Writes go to a temporary file that is fsynced and then renamed, so a reader never
sees a partial file, and the same bytes stored twice are one file. A process that
died mid-write (killed, crashed) leaves its scratch directory unlocked, and the next
process to start on the same cache sweeps it away.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterable, Iterator
from pathlib import Path

from l1.cache.incoming import HEAD, Incoming, media_type
from l1.errors import InsufficientStorage, InvalidInput, NotFound
from l1.identifiers import is_content_hash, new_hasher
from l1.schemas import StoredItem

__all__ = ["ContentStore", "Incoming", "detect_content_type"]

log = logging.getLogger(__name__)

UNLIMITED = 1 << 62
VERIFY_BLOCK = 1 << 20


def detect_content_type(path: Path) -> str:
    """The media type of a file, read from its first bytes (never from its name)."""
    with path.open("rb") as file:
        return media_type(file.read(HEAD))


# What a write gets when the disk, or the user's quota on it, is full.
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT})


@contextlib.contextmanager
def _room() -> Iterator[None]:
    """Turn "no space left" into :class:`InsufficientStorage` (507), which says so."""
    try:
        yield
    except OSError as error:
        if error.errno not in NO_ROOM:
            raise
        log.error("the cache's disk is full: %s", error)
        raise InsufficientStorage(
            "the cache has no space left on its disk; nothing was stored: "
            "free some space (or delete items) and send it again"
        ) from None


SCRATCH_PREFIX = "scratch-"
# A scratch directory still being set up (named, not yet locked) is left alone this long.
SETUP_GRACE = 3600.0


class ContentStore:
    """A directory of files addressed by the SHA3-256 of their bytes.

    ``scratch`` names the directory for this store's writes in progress; by default
    the store makes one of its own, locked for as long as the process lives.
    """

    def __init__(self, root: Path, *, scratch: Path | None = None) -> None:
        self.root = root
        self._objects = root / "objects"
        self._objects_dir = str(self._objects)
        self._tmp = root / "tmp"
        self._damaged = root / "damaged"
        self._objects.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._scratch = scratch
        self._lock: int | None = None

    @property
    def scratch(self) -> Path:
        """This process's directory for writes in progress (made on first use)."""
        if self._scratch is None:
            self._scratch = self._claim_scratch()
        return self._scratch

    def _claim_scratch(self) -> Path:
        # Locked before it gets the name a sweep looks for, so no sweep takes it.
        setting_up = Path(tempfile.mkdtemp(prefix=".new-", dir=self._tmp))
        self._lock = os.open(setting_up / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        final = self._tmp / f"{SCRATCH_PREFIX}{os.getpid()}-{setting_up.name.removeprefix('.new-')}"
        os.rename(setting_up, final)
        return final

    def sweep(self) -> int:
        """Remove what processes that are gone left in ``tmp/``; returns how many entries.
        Blocking: run in a thread."""
        swept = 0
        for entry in self._tmp.iterdir():
            if entry == self._scratch:
                continue
            if entry.name.startswith(SCRATCH_PREFIX) and not _locked(entry / ".lock"):
                shutil.rmtree(entry, ignore_errors=True)
                swept += 1
            elif not entry.name.startswith(SCRATCH_PREFIX) and _older_than(entry, SETUP_GRACE):
                # Left by a process that died setting up, or by an older version.
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                swept += 1
        return swept

    def path_for(self, content_hash: str) -> Path:
        """Where the object for ``content_hash`` lives; rejects anything that is not a hash."""
        return Path(self._location(content_hash))

    def exists(self, content_hash: str) -> bool:
        """True when the store holds ``content_hash``."""
        # Plain strings rather than Path objects: this is on every run's path.
        return os.path.isfile(self._location(content_hash))

    def _location(self, content_hash: str) -> str:
        if not is_content_hash(content_hash):
            raise InvalidInput(
                f"{content_hash[:80]!r} is not a content hash (64 lowercase hex characters)"
            )
        return f"{self._objects_dir}/{content_hash[:2]}/{content_hash}"

    def open_path(self, content_hash: str) -> Path:
        """The path of a stored object, or :class:`NotFound`: also when the file is no
        longer what it was when stored (its seal is broken), in which case it is removed
        so that it is never served or rendered from."""
        return self._sealed(content_hash)[0]

    def _sealed(self, content_hash: str) -> tuple[Path, os.stat_result]:
        """The object's path and its ``stat``, checked against its seal."""
        path = self.path_for(content_hash)
        try:
            stat = _intact(path)
        except FileNotFoundError:
            raise NotFound(f"{content_hash} is not in the cache") from None
        if stat is None:
            self._set_aside(path, "changed on disk since it was stored")
            raise NotFound(f"{content_hash} was damaged on this host's disk")
        return path, stat

    def verify(self, content_hash: str) -> bool:
        """Read the object through and check that it still hashes to its name (what a
        seal cannot see: bits rotting in place); a damaged one is set aside. True when
        intact, False when damaged or absent. Blocking."""
        path = self.path_for(content_hash)
        hasher = new_hasher()
        try:
            with path.open("rb") as file:
                while block := file.read(VERIFY_BLOCK):
                    hasher.update(block)
        except FileNotFoundError:
            return False
        if hasher.hexdigest() == content_hash:
            return True
        self._set_aside(path, "no longer hashes to its name")
        return False

    def set_aside(self, content_hash: str, why: str, *, inode: int) -> bool:
        """Move the object out of the store into ``damaged/``, if the file under its name
        is still ``inode`` (the copy found damaged, not a good one stored since); True
        when it was moved."""
        path = self.path_for(content_hash)
        try:
            if path.stat().st_ino != inode:
                return False
        except FileNotFoundError:
            return False
        self._set_aside(path, why)
        return True

    def was_damaged(self, content_hash: str) -> bool:
        """True when a copy of the object was found damaged and set aside."""
        return (self._damaged / self.path_for(content_hash).name).is_file()

    def _set_aside(self, path: Path, why: str) -> None:
        """Move a damaged object out of the store into ``damaged/`` (kept for whoever
        looks into it; never served or rendered from)."""
        log.error("%s %s: moved to %s", path, why, self._damaged)
        self._damaged.mkdir(exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, self._damaged / path.name)

    def describe(self, content_hash: str) -> StoredItem:
        """Size and media type of a stored object."""
        path, stat = self._sealed(content_hash)
        return StoredItem(
            content_hash=content_hash,
            size=stat.st_size,
            content_type=_recorded_media_type(path),
        )

    def age(self, content_hash: str) -> float:
        """Seconds since the object was written; :class:`NotFound` if absent."""
        try:
            return time.time() - self.path_for(content_hash).stat().st_mtime
        except FileNotFoundError:
            raise NotFound(f"{content_hash} is not in the cache") from None

    def stored_hash_of(self, path: Path) -> str | None:
        """The hash of ``path`` when it is already one of the store's objects."""
        if path.parent.parent == self._objects and is_content_hash(path.name):
            return path.name
        return None

    def incoming(self, *, max_bytes: int = UNLIMITED) -> Incoming:
        """A new file to write into, in this process's scratch directory."""
        with _room():
            fd, name = tempfile.mkstemp(dir=self.scratch)
        os.close(fd)
        return Incoming(Path(name), max_bytes=max_bytes)

    def receive_file(self, source: Path, *, max_bytes: int = UNLIMITED) -> Incoming:
        """Copy ``source`` in (not yet committed). Blocking: run in a thread."""
        incoming = self.incoming(max_bytes=max_bytes)
        try:
            with _room(), source.open("rb", buffering=0) as reader:
                incoming.copy_from(reader)
                incoming.finish()
        except BaseException:
            self.discard(incoming)
            raise
        return incoming

    async def receive_stream(
        self, chunks: AsyncIterable[bytes], *, max_bytes: int = UNLIMITED
    ) -> Incoming:
        """Take a stream in (not yet committed), never holding it in memory."""
        incoming = await asyncio.to_thread(self.incoming, max_bytes=max_bytes)
        try:
            with _room():
                await incoming.receive(chunks)
                await asyncio.to_thread(incoming.finish)
        except BaseException:
            await asyncio.to_thread(self.discard, incoming)
            raise
        return incoming

    def commit(self, incoming: Incoming) -> StoredItem:
        """Give a received file its address (atomically; readers see all of it or
        nothing); ``created`` when the store did not hold it yet. Blocking."""
        final = self.path_for(incoming.content_hash)
        content_type = media_type(incoming.head)
        created = not self._present(final)
        if created:
            with _room():
                final.parent.mkdir(exist_ok=True)
                _seal(incoming.path, content_type)
                os.chmod(incoming.path, 0o444)
                os.replace(incoming.path, final)
                _fsync_dir(final.parent)
        else:
            self.discard(incoming)
        return StoredItem(
            content_hash=incoming.content_hash,
            size=incoming.size,
            content_type=content_type,
            created=created,
        )

    @staticmethod
    def _present(final: Path) -> bool:
        """True when ``final`` holds an intact copy (a damaged one is written over)."""
        try:
            return _intact(final) is not None
        except FileNotFoundError:
            return False

    def discard(self, incoming: Incoming) -> None:
        """Drop a received file that will not be committed."""
        incoming.close()
        incoming.path.unlink(missing_ok=True)

    def put_file(self, source: Path) -> StoredItem:
        """Copy ``source`` into the store. Blocking: run in a thread."""
        known = self.stored_hash_of(source)
        if known is not None:
            return self.describe(known)
        return self.commit(self.receive_file(source))

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

    def shards(self) -> list[str]:
        """The names of the directories objects are spread over (two hex characters),
        sorted."""
        return sorted(entry.name for entry in self._objects.iterdir() if entry.is_dir())

    def hashes_in(self, shard: str) -> list[str]:
        """The hashes stored in ``shard``, sorted; none when it is gone."""
        try:
            names = [entry.name for entry in (self._objects / shard).iterdir()]
        except FileNotFoundError:
            return []
        return sorted(name for name in names if is_content_hash(name))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# The extended attributes that record a stored file as it was when its hash was
# checked, and its media type as read then (so that it is not read again on every use).
SEAL = "user.l1.seal"
MEDIA_TYPE = "user.l1.type"


def _seal(path: Path, content_type: str) -> None:
    stat = path.stat()
    with contextlib.suppress(OSError):  # a file system without extended attributes
        os.setxattr(path, SEAL, f"{stat.st_size}:{stat.st_mtime_ns}".encode())
        os.setxattr(path, MEDIA_TYPE, content_type.encode())


def _recorded_media_type(path: Path) -> str:
    """The media type recorded when ``path`` was stored, else read from its first bytes."""
    try:
        return os.getxattr(path, MEDIA_TYPE).decode()
    except OSError:
        return detect_content_type(path)


def _intact(path: Path) -> os.stat_result | None:
    """``path``'s stat, or None if it changed since it was sealed (FileNotFoundError if
    absent). A file without a seal (older, or on a file system without extended
    attributes) is taken as intact."""
    try:
        seal = os.getxattr(path, SEAL)
    except OSError as error:
        if error.errno == errno.ENOENT:
            raise FileNotFoundError(path) from None
        if error.errno in (errno.ENODATA, errno.ENOTSUP):
            return path.stat()
        return None
    stat = path.stat()
    return stat if seal == f"{stat.st_size}:{stat.st_mtime_ns}".encode() else None


def _locked(lock: Path) -> bool:
    """True while a live process holds ``lock``."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except FileNotFoundError:
        return False
