"""What a path or an input may name a run or an item by: the full id, a unique prefix
of it (as git takes a short commit id), or for an item the name of an asset.

Prefixes are looked up in sorted sets whose members all score 0, so that they sort by
name (``artdag:runs:ids``, ``artdag:cache:hashes``): one ``ZRANGEBYLEX ... LIMIT 0 2``
tells none, one or several apart. A full id costs no lookup at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, cast

from l1 import keys
from l1.errors import Conflict, InvalidInput, L1Error, NotFound, Unprocessable
from l1.identifiers import is_content_hash

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from l1.assets import Asset

__all__ = ["MIN_PREFIX", "Lookups"]

MIN_PREFIX = 4
_PREFIX = re.compile(rf"[0-9a-f]{{{MIN_PREFIX},63}}")
# How many of the matches an ambiguous prefix's error names.
_SHOWN = 4


class Lookups:
    """Turns what a caller typed into the full run id or content hash it stands for."""

    def __init__(self, redis: Redis, assets: Mapping[str, Asset]) -> None:
        self._redis = redis
        self._assets = assets

    async def run_id(self, text: str) -> str:
        """The run id ``text`` is, or begins (400 malformed, 404 none, 409 several)."""
        if is_content_hash(text):
            return text
        if not _PREFIX.fullmatch(text):
            raise InvalidInput(
                f"{_quoted(text)} is not a run id: give its 64 lowercase hex characters "
                f"or at least {MIN_PREFIX} of them"
            )
        return await self._unique(keys.RUN_IDS, text, "run", NotFound)

    async def content_hash(self, text: str) -> str:
        """The content hash ``text`` is, begins, or names as an asset (400 malformed,
        404 none, 409 several)."""
        found = self._direct(text)
        return found or await self._unique(keys.CACHE_HASHES, text, "cached item", NotFound)

    async def input_hash(self, text: str) -> str:
        """Like :meth:`content_hash`, for an input in a request body: a value that is
        neither a prefix nor an asset name is left for the planner to judge, and a
        prefix that matches nothing is 422, as a missing input is."""
        if self._direct(text, strict=False) is not None or not _PREFIX.fullmatch(text):
            return text
        return await self._unique(keys.CACHE_HASHES, text, "cached item", Unprocessable)

    async def backfill(self) -> None:
        """Index by name the runs and items recorded before these indexes existed."""
        for by_name, by_time in ((keys.RUN_IDS, keys.RUNS), (keys.CACHE_HASHES, keys.CACHE_ITEMS)):
            if await self._redis.zcard(by_name) != await self._redis.zcard(by_time):
                # One atomic step: the union with every score weighted 0.
                await self._redis.zunionstore(by_name, {by_name: 1, by_time: 0})

    def _direct(self, text: str, *, strict: bool = True) -> str | None:
        if is_content_hash(text):
            return text
        if (asset := self._assets.get(text)) is not None:
            return asset.content_hash
        if strict and not _PREFIX.fullmatch(text):
            known = ", ".join(sorted(self._assets))
            raise InvalidInput(
                f"{_quoted(text)} is not a content hash: give its 64 lowercase hex "
                f"characters, at least {MIN_PREFIX} of them, or an asset name ({known})"
            )
        return None

    async def _unique(self, key: str, prefix: str, kind: str, missing: type[L1Error]) -> str:
        low, high = f"[{prefix}".encode(), f"[{prefix}".encode() + b"\xff"
        found = await self._members(key, low, high, 2)
        if len(found) == 1:
            return found[0]
        if not found:
            raise missing(f"no {kind} starts with {prefix!r}")
        count = await self._redis.zlexcount(key, low, high)
        shown = ", ".join(m[:12] for m in await self._members(key, low, high, _SHOWN))
        more = ", …" if count > _SHOWN else ""
        raise Conflict(
            f"{prefix!r} is ambiguous: {count} {kind}s start with it ({shown}{more}); "
            "give more characters"
        )

    async def _members(self, key: str, low: bytes, high: bytes, limit: int) -> list[str]:
        rows = await self._redis.zrangebylex(key, low, high, start=0, num=limit)
        return [m.decode() for m in cast("list[bytes]", rows)]


def _quoted(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:79] + "…")
