"""Registered recipes in Redis: ``artdag:recipe:{name}`` holds the latest version."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from l1 import keys
from l1.pagination import newest_first
from l1.runs.recipes import Recipe, recipe_hash
from l1.schemas import Page
from l1.timestamps import micros, utc_now

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RecipeStore", "StoredRecipe"]


class StoredRecipe(msgspec.Struct, kw_only=True):
    """A registered recipe with its content hash."""

    name: str
    version: str
    description: str
    content_hash: str
    registered_at: str
    recipe: Recipe


_decoder = msgspec.json.Decoder(StoredRecipe)
_encoder = msgspec.json.Encoder()


class RecipeStore:
    """Reads and writes registered recipes."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def put(self, recipe: Recipe) -> StoredRecipe:
        """Register ``recipe``, replacing an earlier version of the same name."""
        stored = StoredRecipe(
            name=recipe.name,
            version=recipe.version,
            description=recipe.description,
            content_hash=recipe_hash(recipe),
            registered_at=utc_now(),
            recipe=recipe,
        )
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.recipe(recipe.name), _encoder.encode(stored))
            pipe.zadd(keys.RECIPES, {recipe.name: micros(stored.registered_at)})
            await pipe.execute()
        return stored

    async def get(self, name: str) -> StoredRecipe | None:
        """The recipe registered as ``name``, or None."""
        raw = await self._redis.get(keys.recipe(name))
        return None if raw is None else _decoder.decode(raw)

    async def page(self, *, limit: int, cursor: str | None) -> Page[StoredRecipe]:
        """Recipes, most recently registered first."""
        names, next_cursor = await newest_first(
            self._redis, keys.RECIPES, limit=limit, cursor=cursor
        )
        raws = await self._redis.mget([keys.recipe(n) for n in names]) if names else []
        return Page(items=[_decoder.decode(r) for r in raws if r], next_cursor=next_cursor)
