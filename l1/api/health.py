"""Whether NATS and Redis answer right now."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Literal

import msgspec
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from redis.asyncio import Redis

__all__ = ["Health", "HealthCheck"]

State = Literal["ok", "down"]


class Health(msgspec.Struct, kw_only=True):
    """One word per dependency."""

    nats: State
    redis: State

    @property
    def ready(self) -> bool:
        """True when every dependency answers."""
        return self.nats == "ok" and self.redis == "ok"


class HealthCheck:
    """Asks each dependency, briefly."""

    def __init__(self, nc: NATS, redis: Redis) -> None:
        self._nc = nc
        self._redis = redis

    async def __call__(self) -> Health:
        return Health(
            nats="ok" if self._nc.is_connected else "down",
            redis="ok" if await self._redis_answers() else "down",
        )

    async def _redis_answers(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self._redis.ping(), timeout=1.0))
        except (RedisError, OSError, TimeoutError):
            return False
