"""Who holds each cache item, changed atomically against deletion.

A run references its inputs from the moment it is accepted and its outputs from the
moment it completes (``artdag:refs:{hash}``). Deleting an item first claims it with a
tombstone, in one Redis script that succeeds only if nothing references it and it is
not marked published; taking a reference fails while a tombstone stands. So a
deletion and a run that starts using the same item can never both succeed.
"""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec

from l1 import keys

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["Claim", "ClaimResult", "References"]

# How long "nothing is marked published yet" is trusted before Redis is asked again.
RECHECK_PUBLISHED = 0.5

# A deletion that died half way must not hold its item forever.
TOMBSTONE_SECONDS = 120

# KEYS: refs:{h}, published set, tombstone:{h}.  ARGV: hash, tombstone ttl, claim token.
_CLAIM = """
local users = redis.call('SRANDMEMBER', KEYS[1], 10)
if #users > 0 then return {'used', unpack(users)} end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return {'published'} end
if not redis.call('SET', KEYS[3], ARGV[3], 'NX', 'EX', ARGV[2]) then return {'busy'} end
return {'claimed'}
"""

# KEYS: tombstone:{h}.  ARGV: claim token.  Only the claim's owner lifts it.
_END = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: n refs keys, then n tombstone keys.  ARGV: holder id, n.
_HOLD = """
local n = tonumber(ARGV[2])
for i = 1, n do
  if redis.call('EXISTS', KEYS[n + i]) == 1 then return i end
end
for i = 1, n do redis.call('SADD', KEYS[i], ARGV[1]) end
return 0
"""


class Claim(enum.StrEnum):
    """The outcome of trying to claim an item for deletion."""

    CLAIMED = "claimed"
    USED = "used"
    PUBLISHED = "published"
    BUSY = "busy"


class ClaimResult(msgspec.Struct, frozen=True):
    """A claim's outcome; when the item is used, some of the runs using it; when
    claimed, the claim's token (it names the deletion)."""

    outcome: Claim
    runs: list[str] = []
    token: str = ""


class References:
    """The reference sets and deletion tombstones in Redis."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._any_published = False
        self._next_check = 0.0
        self._claim = redis.register_script(_CLAIM)
        self._end = redis.register_script(_END)
        self._hold = redis.register_script(_HOLD)

    async def hold(self, holder: str, items: Sequence[str]) -> str | None:
        """Reference ``items`` from ``holder`` (a run id) unless one is being deleted;
        returns the item being deleted, or None on success."""
        unique = list(dict.fromkeys(items))
        refs = [keys.references(h) for h in unique]
        tombstones = [keys.tombstone(h) for h in unique]
        blocked = int(await self._hold(keys=[*refs, *tombstones], args=[holder, len(unique)]))
        return unique[blocked - 1] if blocked else None

    async def release(self, holder: str, items: Sequence[str]) -> None:
        """Drop ``holder``'s references to ``items``."""
        async with self._redis.pipeline(transaction=True) as pipe:
            for item in set(items):
                pipe.srem(keys.references(item), holder)
            await pipe.execute()

    async def holders(self, content_hash: str) -> set[str]:
        """The runs referencing ``content_hash``."""
        members = await self._redis.smembers(keys.references(content_hash))
        return {m.decode() if isinstance(m, bytes) else m for m in members}

    async def busy(self, content_hash: str) -> bool:
        """True while the item is being stored or deleted."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(keys.tombstone(content_hash))
            pipe.smembers(keys.references(content_hash))
            deleting, holders = await pipe.execute()
        storing = any(h.startswith(b"storing:") for h in holders)
        return bool(deleting) or storing

    async def claim_for_deletion(self, content_hash: str) -> ClaimResult:
        """Atomically check that nothing holds the item and mark it as being deleted."""
        token = uuid.uuid4().hex
        reply = await self._claim(
            keys=[keys.references(content_hash), keys.PUBLISHED, keys.tombstone(content_hash)],
            args=[content_hash, TOMBSTONE_SECONDS, token],
        )
        values = [v.decode() if isinstance(v, bytes) else str(v) for v in reply]
        outcome = Claim(values[0])
        return ClaimResult(outcome, values[1:], token if outcome is Claim.CLAIMED else "")

    async def end_deletion(self, content_hash: str, token: str) -> None:
        """Lift the tombstone of the claim ``token`` once the item is gone (or the
        deletion gave up)."""
        await self._end(keys=[keys.tombstone(content_hash)], args=[token])

    async def mark_published(self, items: Sequence[str]) -> None:
        """Remember that L2 published ``items``: they may never be deleted."""
        if items:
            await self._redis.sadd(keys.PUBLISHED, *items)
            self._any_published = True

    async def any_published(self) -> bool:
        """True once anything has been marked published. Marks are never taken back, so
        a yes is kept; a no is asked again after :data:`RECHECK_PUBLISHED` seconds."""
        now = time.monotonic()
        if not self._any_published and now >= self._next_check:
            self._any_published = bool(await self._redis.exists(keys.PUBLISHED))
            self._next_check = now + RECHECK_PUBLISHED
        return self._any_published

    async def published_marks(self, items: Sequence[str]) -> list[str]:
        """Those of ``items`` marked published."""
        if not items:
            return []
        flags = await self._redis.smismember(keys.PUBLISHED, list(items))
        return [item for item, flag in zip(items, flags, strict=True) if flag]
