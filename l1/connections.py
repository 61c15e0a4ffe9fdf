"""Connections to NATS and Redis, configured the same way in every process."""

from __future__ import annotations

import logging

import nats
from nats.aio.client import Client as NATS
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["connect_nats", "connect_redis"]

log = logging.getLogger(__name__)


async def connect_nats(url: str, *, name: str) -> NATS:
    """Connect to NATS and keep reconnecting for as long as the process lives."""

    async def on_error(error: Exception) -> None:
        log.warning("nats: %s", error)

    return await nats.connect(
        url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=2,
        allow_reconnect=True,
        error_cb=on_error,
    )


def connect_redis(url: str) -> Redis:
    """A Redis client that retries briefly on connection errors.

    The pool blocks (up to 10 s) for a free connection under load instead of failing,
    which would read as "Redis is down".
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=128,
        timeout=10,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=10,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return Redis.from_pool(pool)
