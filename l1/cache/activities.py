"""Run activities: which items each completed run used and made.

The deletion rules read these; the run projector writes them when a run completes.
Writing is idempotent, so a redelivered event changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from l1 import keys
from l1.timestamps import micros

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["Activity", "ActivityLog"]


class Activity(msgspec.Struct, kw_only=True):
    """The items one run used and made."""

    run_id: str
    inputs: list[str]
    output: str
    intermediates: list[str] = []
    completed_at: str

    @property
    def items(self) -> set[str]:
        """Every content hash the activity references."""
        return {*self.inputs, self.output, *self.intermediates}


_decoder = msgspec.json.Decoder(Activity)
_encoder = msgspec.json.Encoder()


class ActivityLog:
    """Reads and writes activities and the per-item reference sets built from them."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def record(self, activity: Activity) -> None:
        """Store ``activity`` and reference each of its items from the run."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.activity(activity.run_id), _encoder.encode(activity))
            pipe.zadd(keys.ACTIVITIES, {activity.run_id: micros(activity.completed_at)})
            for item in activity.items:
                pipe.sadd(keys.references(item), activity.run_id)
            await pipe.execute()

    async def get(self, run_id: str) -> Activity | None:
        """The activity of a run, or None."""
        raw = await self._redis.get(keys.activity(run_id))
        return None if raw is None else _decoder.decode(raw)

    async def runs_using(self, content_hash: str) -> set[str]:
        """The runs whose activity references ``content_hash``."""
        members = await self._redis.smembers(keys.references(content_hash))
        return {m.decode() if isinstance(m, bytes) else m for m in members}
