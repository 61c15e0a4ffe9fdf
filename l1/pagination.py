"""Cursor pagination over Redis sorted sets, newest first.

A cursor names the last item of the previous page (its score and member), so pages
stay stable while new items arrive at the head.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, cast

from l1.errors import InvalidInput

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["MAX_LIMIT", "check_limit", "decode_cursor", "encode_cursor", "newest_first"]

MAX_LIMIT = 1000


def check_limit(limit: int) -> int:
    """``limit`` when it is within 1..1000, else :class:`InvalidInput`."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    return limit


def encode_cursor(score: int, member: str) -> str:
    """A cursor naming the item ``member`` with ``score``: opaque to clients."""
    return base64.urlsafe_b64encode(f"{score}:{member}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The score and member a cursor names; :class:`InvalidInput` if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        score, member = raw.split(":", 1)
        return int(score), member
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput("cursor is not one this server gave out") from None


async def newest_first(
    redis: Redis, key: str, *, limit: int, cursor: str | None
) -> tuple[list[str], str | None]:
    """One page of members of ``key``, highest score first, and the next page's cursor."""
    check_limit(limit)
    top: int | str = "+inf"
    after: tuple[int, str] | None = None
    if cursor:
        after = decode_cursor(cursor)
        top = after[0]
    members: list[tuple[str, int]] = []
    offset = 0
    batch = limit + 1
    while len(members) <= limit:
        rows = await redis.zrange(
            key, top, "-inf", desc=True, byscore=True, offset=offset, num=batch, withscores=True
        )
        for raw, score in cast("list[tuple[bytes | str, float]]", rows):
            member = raw.decode() if isinstance(raw, bytes) else raw
            # Equal scores come in descending member order; skip those already served.
            if after and int(score) == after[0] and member >= after[1]:
                continue
            members.append((member, int(score)))
        if len(rows) < batch:
            break
        offset += batch
    page = members[:limit]
    next_cursor = encode_cursor(page[-1][1], page[-1][0]) if len(members) > limit else None
    return [m for m, _ in page], next_cursor
