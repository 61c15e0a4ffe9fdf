"""Thumbnails for the dashboard, made once per item and kept beside the cache.

They are made in a small process pool (decoding is CPU work, and the media is
untrusted), at most once at a time per item, and kept under ``$L1_CACHE_DIR/thumbs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING

from l1.cache.thumbnails import make_thumbnail
from l1.events import subjects
from l1.identifiers import is_content_hash

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.aio.msg import Msg

__all__ = ["Thumbnails", "kind_of"]

# Renders go to the workers; the API only ever needs a little help with pictures.
POOL_SIZE = 2


def kind_of(content_type: str) -> str | None:
    """``image`` or ``video`` for the media types a thumbnail can be made of."""
    major = content_type.partition("/")[0]
    return major if major in ("image", "video") else None


class Thumbnails:
    """Makes and finds thumbnails."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._pool: ProcessPoolExecutor | None = None
        self._making: dict[str, asyncio.Future[bool]] = {}

    def path(self, content_hash: str) -> Path:
        """Where the thumbnail of ``content_hash`` is kept."""
        assert is_content_hash(content_hash)
        return self._root / content_hash[:2] / f"{content_hash}.jpg"

    async def get(self, content_hash: str, source: Path, content_type: str) -> Path | None:
        """The thumbnail of the item at ``source``, made now if it was not yet; None for
        an item that has none (not a picture, or undecodable)."""
        target = self.path(content_hash)
        if target.exists():
            return target
        kind = kind_of(content_type)
        if kind is None:
            return None
        making = self._making.get(content_hash)
        if making is None:
            making = asyncio.ensure_future(self._make(source, target, kind))
            self._making[content_hash] = making
            making.add_done_callback(lambda _: self._making.pop(content_hash, None))
        return target if await asyncio.shield(making) else None

    async def _make(self, source: Path, target: Path, kind: str) -> bool:
        target.parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._executor(), make_thumbnail, str(source), str(target), kind
            )
        except BrokenProcessPool:  # a codec crashed its process: that item has none
            self._pool = None
            return False

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # Spawned, not forked: the API process has threads and an event loop.
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=POOL_SIZE, mp_context=context)
        return self._pool

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
        """Stop the pool's processes."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
