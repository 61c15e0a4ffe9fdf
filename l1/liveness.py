"""A file a service keeps fresh while its connections are up (``L1_HEALTH_FILE``), for
a container engine's health check to read: ``l1 healthcheck``.

One mechanism for every role, including those without an HTTP port (workers, the
event subscribers): the service knows whether it can work; the check only reads
how long ago it last said so.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from l1.runtime import sleep_unless

__all__ = ["BEAT_EVERY", "STALE_AFTER", "is_fresh", "keep_fresh"]

BEAT_EVERY = 5.0
# Several missed beats, not one slow one, make a service unhealthy.
STALE_AFTER = 30.0


async def keep_fresh(
    path: Path, healthy: Callable[[], Awaitable[bool]], stop: asyncio.Event
) -> None:
    """Touch ``path`` every :data:`BEAT_EVERY` seconds while ``healthy()`` says so, until
    ``stop`` is set; then remove it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        while not stop.is_set():
            if await healthy():
                path.touch()
            await sleep_unless(stop, BEAT_EVERY)
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


def is_fresh(path: Path) -> bool:
    """True when ``path`` was touched within the last :data:`STALE_AFTER` seconds."""
    try:
        return time.time() - path.stat().st_mtime < STALE_AFTER
    except FileNotFoundError:
        return False
