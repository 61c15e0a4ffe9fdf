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
from l1.errors import Conflict
from l1.pagination import newest_first
from l1.schemas import Page, Run, RunStatus
from l1.timestamps import micros, utc_now

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline

__all__ = ["RunStore"]

# KEYS: run, runs index, status index, n reference sets, n tombstones.
# ARGV: run JSON, run id, score, n.  One step, so a deletion never slips in between.
_CREATE = """
local n = tonumber(ARGV[4])
local existing = redis.call('GET', KEYS[1])
if existing then return {'exists', existing} end
for i = 1, n do
  if redis.call('EXISTS', KEYS[3 + n + i]) == 1 then return {'deleting', tostring(i)} end
end
redis.call('SET', KEYS[1], ARGV[1])
for i = 1, n do redis.call('SADD', KEYS[3 + i], ARGV[2]) end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
return {'created'}
"""

_decoder = msgspec.json.Decoder(Run)
_encoder = msgspec.json.Encoder()


class RunStore:
    """Reads and writes run records."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._create = redis.register_script(_CREATE)

    async def create(self, run: Run, *, holding: list[str]) -> tuple[Run, bool]:
        """Store ``run`` unless a run with its id exists, and let it hold the items
        ``holding`` (its inputs) in the same step; returns the stored run and whether
        this call created it. :class:`Conflict` if one of the items is being deleted."""
        items = list(dict.fromkeys(holding))
        reply = await self._create(
            keys=[
                keys.run(run.run_id),
                keys.RUNS,
                keys.runs_with_status(run.status),
                *(keys.references(h) for h in items),
                *(keys.tombstone(h) for h in items),
            ],
            args=[_encoder.encode(run), run.run_id, micros(run.created_at), len(items)],
        )
        outcome = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
        if outcome == "exists":
            return _decoder.decode(reply[1]), False
        if outcome == "deleting":
            item = items[int(reply[1]) - 1]
            raise Conflict(f"input {item} is being deleted; upload it again to use it")
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

    @staticmethod
    def _queue_index(pipe: Pipeline, run: Run, previous: Run | None) -> None:
        score = micros(run.created_at)
        pipe.zadd(keys.RUNS, {run.run_id: score})
        if previous is not None and previous.status != run.status:
            pipe.zrem(keys.runs_with_status(previous.status), run.run_id)
        pipe.zadd(keys.runs_with_status(run.status), {run.run_id: score})
