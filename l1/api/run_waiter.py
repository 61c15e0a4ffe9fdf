"""Waiting for runs to finish without polling.

The run store publishes a run id on ``artdag:runs:finished`` when a run reaches a
terminal status. One listener per API process wakes the requests waiting on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from l1 import keys
from l1.runtime import sleep_unless

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from l1.runs.store import RunStore
    from l1.schemas import Run

__all__ = ["RunWaiter"]

log = logging.getLogger(__name__)

# Re-read the run at least this often, in case a notification was missed while
# Redis was unreachable.
RECHECK = 2.0


class RunWaiter:
    """Wakes waiters when their run finishes."""

    def __init__(self, redis: Redis, runs: RunStore) -> None:
        self._redis = redis
        self._runs = runs
        self._waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)

    async def listen(self, stop: asyncio.Event) -> None:
        """Relay finish notifications until ``stop`` is set."""
        while not stop.is_set():
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(keys.RUNS_FINISHED_CHANNEL)
                    while not stop.is_set():
                        message = await pubsub.get_message(timeout=0.5)
                        if message is not None:
                            self._wake(message["data"].decode())
            except (RedisError, OSError) as error:
                log.warning("finish notifications interrupted: %s", error)
                await sleep_unless(stop, 1.0)

    async def wait(self, run_id: str, timeout: float) -> Run | None:
        """The run once it has finished, or as it is when ``timeout`` runs out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        finished = asyncio.Event()
        self._waiters[run_id].add(finished)
        try:
            while True:
                run = await self._runs.get(run_id)
                remaining = deadline - loop.time()
                if run is None or run.status.terminal or remaining <= 0:
                    return run
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(finished.wait(), timeout=min(remaining, RECHECK))
        finally:
            self._waiters[run_id].discard(finished)
            if not self._waiters[run_id]:
                del self._waiters[run_id]

    def _wake(self, run_id: str) -> None:
        for event in self._waiters.get(run_id, ()):
            event.set()
