"""Runs in Redis: ``artdag:run:{run_id}`` plus sorted-set indexes for listing.

The API creates a run; after that only the event subscribers change it, through
:meth:`RunStore.update`, which is an optimistic transaction so concurrent
projectors never lose each other's writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec
from msgspec.structs import replace
from redis.exceptions import WatchError

from l1 import keys
from l1.pagination import newest_first
from l1.schemas import Page, Run, RunStatus
from l1.timestamps import micros, utc_now

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline

__all__ = ["RunStore"]

_decoder = msgspec.json.Decoder(Run)
_encoder = msgspec.json.Encoder()


class RunStore:
    """Reads and writes run records."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def create(self, run: Run) -> tuple[Run, bool]:
        """Store ``run`` unless a run with its id exists; returns the stored run and
        whether this call created it."""
        created = await self._redis.set(keys.run(run.run_id), _encoder.encode(run), nx=True)
        if not created:
            existing = await self.get(run.run_id)
            if existing is not None:
                return existing, False
        await self._index(run, previous=None)
        return run, True

    async def get(self, run_id: str) -> Run | None:
        """The run, or None."""
        raw = await self._redis.get(keys.run(run_id))
        return None if raw is None else _decoder.decode(raw)

    async def get_many(self, run_ids: list[str]) -> list[Run]:
        """The runs that exist among ``run_ids``, in the same order."""
        if not run_ids:
            return []
        raws = await self._redis.mget([keys.run(r) for r in run_ids])
        return [_decoder.decode(raw) for raw in raws if raw is not None]

    async def page(
        self, *, limit: int, cursor: str | None, status: RunStatus | None = None
    ) -> Page[Run]:
        """Runs newest first, optionally only those in ``status``."""
        key = keys.runs_with_status(status) if status else keys.RUNS
        run_ids, next_cursor = await newest_first(self._redis, key, limit=limit, cursor=cursor)
        return Page(items=await self.get_many(run_ids), next_cursor=next_cursor)

    async def update(self, run_id: str, change: Callable[[Run | None], Run | None]) -> Run | None:
        """Apply ``change`` to the stored run atomically and return the result.

        ``change`` gets the current run (or None) and returns the new one, or None to
        leave it as it is. It may be called more than once if another writer races.
        """
        key = keys.run(run_id)
        while True:
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    current = None if raw is None else _decoder.decode(raw)
                    updated = change(current)
                    if updated is None or updated == current:
                        return current
                    updated = replace(updated, updated_at=utc_now())
                    pipe.multi()
                    pipe.set(key, _encoder.encode(updated))
                    self._queue_index(pipe, updated, current)
                    if updated.status.terminal and not (current and current.status.terminal):
                        pipe.publish(keys.RUNS_FINISHED_CHANNEL, run_id)
                    await pipe.execute()
                    return updated
                except WatchError:
                    continue

    async def delete(self, run: Run) -> None:
        """Remove the run record and its index entries."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.run(run.run_id))
            pipe.zrem(keys.RUNS, run.run_id)
            for status in RunStatus:
                pipe.zrem(keys.runs_with_status(status), run.run_id)
            await pipe.execute()

    async def _index(self, run: Run, previous: Run | None) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            self._queue_index(pipe, run, previous)
            await pipe.execute()

    @staticmethod
    def _queue_index(pipe: Pipeline, run: Run, previous: Run | None) -> None:
        score = micros(run.created_at)
        pipe.zadd(keys.RUNS, {run.run_id: score})
        if previous is not None and previous.status != run.status:
            pipe.zrem(keys.runs_with_status(previous.status), run.run_id)
        pipe.zadd(keys.runs_with_status(run.status), {run.run_id: score})
