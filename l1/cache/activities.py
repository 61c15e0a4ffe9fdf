"""Run activities: which items each completed run used and made.

The deletion rules read these; the run projector writes them when a run completes, in
the same step as the run record and the references the activity holds.
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
    def items(self) -> list[str]:
        """Every content hash the activity lists."""
        return list(dict.fromkeys([*self.inputs, *self.intermediates, self.output]))

    @property
    def held(self) -> list[str]:
        """The items the activity protects: its inputs and output (intermediates can be
        rendered again, so they are not held)."""
        return list(dict.fromkeys([*self.inputs, self.output]))


_decoder = msgspec.json.Decoder(Activity)
_encoder = msgspec.json.Encoder()


class ActivityLog:
    """Reads and writes activities; each activity holds references to its items."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    @staticmethod
    def entry(activity: Activity) -> tuple[str, bytes, tuple[str, tuple[str, int]]]:
        """What recording ``activity`` writes: its key and value, and its place in the
        index of activities (key, member and score)."""
        member = (activity.run_id, micros(activity.completed_at))
        return keys.activity(activity.run_id), _encoder.encode(activity), (keys.ACTIVITIES, member)

    async def get(self, run_id: str) -> Activity | None:
        """The activity of a run, or None."""
        raw = await self._redis.get(keys.activity(run_id))
        return None if raw is None else _decoder.decode(raw)

    async def remove(self, activity: Activity) -> None:
        """Forget an activity and the references it held."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.activity(activity.run_id))
            pipe.zrem(keys.ACTIVITIES, activity.run_id)
            for item in activity.items:
                pipe.srem(keys.references(item), activity.run_id)
            await pipe.execute()
