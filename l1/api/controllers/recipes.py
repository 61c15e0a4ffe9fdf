"""``/recipes`` and ``/effects``: what can be rendered."""

from __future__ import annotations

import asyncio
from typing import Annotated

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.status_codes import HTTP_201_CREATED

from l1.api.openapi import RecipeBody
from l1.effects import EffectInfo, EffectRegistry
from l1.errors import NotFound
from l1.runs.recipe_store import RecipeStore, StoredRecipe
from l1.runs.recipes import parse_recipe
from l1.schemas import Page

__all__ = ["EffectController", "RecipeController"]

Recipes = NamedDependency[RecipeStore]
Effects = NamedDependency[EffectRegistry]


class RecipeController(Controller):
    """Recipes: graphs of effects over named inputs."""

    path = "/recipes"
    tags = ["recipes"]

    @post(
        "/",
        summary="Register a recipe",
        status_code=HTTP_201_CREATED,
        operation_class=RecipeBody,
    )
    async def register(
        self, request: Request, recipe_store: Recipes, effects: Effects
    ) -> StoredRecipe:
        """Register the YAML (or JSON) recipe in the body; 422 names the node at fault,
        409 a name that belongs to an effect."""
        # Off the event loop: parsing is CPU work, bounded by the body limit.
        recipe = await asyncio.to_thread(parse_recipe, await request.body(), effects)
        return await recipe_store.put(recipe)

    @get("/", summary="List recipes")
    async def list_recipes(
        self,
        recipe_store: Recipes,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, QueryParameter(max_length=512)] = None,
    ) -> Page[StoredRecipe]:
        """Registered recipes, most recent first."""
        return await recipe_store.page(limit=limit, cursor=cursor)

    @get("/{name:str}", summary="Read a recipe")
    async def get_recipe(self, name: FromPath[str], recipe_store: Recipes) -> StoredRecipe:
        """The recipe registered under ``name``."""
        stored = await recipe_store.get(name)
        if stored is None:
            raise NotFound(f"no recipe {name[:80]!r}")
        return stored


class EffectController(Controller):
    """The effects this server renders."""

    path = "/effects"
    tags = ["recipes"]

    @get("/", summary="List effects with their parameters")
    async def list_effects(self, effects: Effects) -> Page[EffectInfo]:
        """Each effect's name, version, content hash, media kinds and JSON-Schema params:
        every one, in one page."""
        return Page(items=[effect.info() for effect in effects])

    @get("/{name:str}", summary="Read an effect")
    async def get_effect(self, name: FromPath[str], effects: Effects) -> EffectInfo:
        """One effect, its parameters as JSON Schema."""
        if name not in effects:
            raise NotFound(f"no effect {name[:80]!r}")
        return effects.get(name).info()
