"""Waiting for runs to finish without polling.

The run store publishes a run id on ``artdag:runs:finished`` when a run reaches a
terminal status. One listener per API process wakes the requests waiting on it; it is
subscribed only while some request waits, so that an API nobody waits on does not read
every run's notification.
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
# How often an idle listener looks for waiters (it is also woken when one comes).
IDLE = 0.5


class RunWaiter:
    """Wakes waiters when their run finishes."""

    def __init__(self, redis: Redis, runs: RunStore) -> None:
        self._redis = redis
        self._runs = runs
        self._waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self._wanted = asyncio.Event()  # a waiter came
        self._listening = asyncio.Event()  # subscribed: no notification is missed

    async def listen(self, stop: asyncio.Event) -> None:
        """Relay finish notifications, while anyone waits, until ``stop`` is set."""
        while not stop.is_set():
            if not self._waiters:
                self._wanted.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wanted.wait(), timeout=IDLE)
                continue
            try:
                await self._relay(stop)
            except (RedisError, OSError) as error:
                log.warning("finish notifications interrupted: %s", error)
                await sleep_unless(stop, 1.0)

    async def wait(self, run_id: str, timeout: float) -> Run | None:
        """The run once it has finished, or as it is when ``timeout`` runs out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        finished = asyncio.Event()
        self._waiters[run_id].add(finished)
        self._wanted.set()
        try:
            # Subscribed before the first read, so that a finish after it is heard.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._listening.wait(), timeout=min(timeout, RECHECK))
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

    async def _relay(self, stop: asyncio.Event) -> None:
        async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(keys.RUNS_FINISHED_CHANNEL)
            self._listening.set()
            try:
                # Nothing is awaited between finding no waiter and no longer listening:
                # a waiter that comes meanwhile waits for the next subscription.
                while not stop.is_set() and self._waiters:
                    message = await pubsub.get_message(timeout=IDLE)
                    if message is not None:
                        self._wake(message["data"].decode())
            finally:
                self._listening.clear()

    def _wake(self, run_id: str) -> None:
        for event in self._waiters.get(run_id, ()):
            event.set()
