"""``/recipes`` and ``/effects``: what can be rendered."""

from __future__ import annotations

import asyncio
from typing import Annotated

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter
from litestar.status_codes import HTTP_201_CREATED

from l1.api.openapi import RECIPE_NAME_RULES, REDIS, WRITE, RecipeBody, errors
from l1.effects import EffectInfo, EffectRegistry
from l1.errors import NotFound
from l1.runs.recipe_store import RecipeStore, StoredRecipe
from l1.runs.recipes import parse_recipe
from l1.schemas import Page

__all__ = ["EffectController", "RecipeController"]

Recipes = NamedDependency[RecipeStore]
Effects = NamedDependency[EffectRegistry]
RecipeName = Annotated[
    str,
    PathParameter(
        description="The recipe's name",
        # For the schema only: no recipe has another name, so any other is 404.
        schema_extra=RECIPE_NAME_RULES,
    ),
]
EffectName = Annotated[str, PathParameter(description="The effect's name")]


class RecipeController(Controller):
    """Recipes: graphs of effects over named inputs."""

    path = "/recipes"
    tags = ["recipes"]

    @post(
        "/",
        summary="Register a recipe",
        status_code=HTTP_201_CREATED,
        operation_class=RecipeBody,
        # Any Content-Type: the document is read as YAML, of which JSON is a part.
        responses=errors(WRITE, 409, 413, 422, REDIS),
    )
    async def register(
        self, request: Request, recipe_store: Recipes, effects: Effects
    ) -> StoredRecipe:
        """Register the YAML (or JSON) recipe in the body; 422 names the node at fault,
        409 a name that belongs to an effect."""
        # Off the event loop: parsing is CPU work, bounded by the body limit.
        recipe = await asyncio.to_thread(parse_recipe, await request.body(), effects)
        return await recipe_store.put(recipe)

    @get("/", summary="List recipes", responses=errors(REDIS))
    async def list_recipes(
        self,
        recipe_store: Recipes,
        limit: Annotated[
            int, QueryParameter(ge=1, le=1000, description="Items per page, 1 to 1000")
        ] = 100,
        cursor: Annotated[
            str | None,
            QueryParameter(
                max_length=512, description="From a previous page's `next_cursor`, as given"
            ),
        ] = None,
    ) -> Page[StoredRecipe]:
        """Registered recipes, most recent first."""
        return await recipe_store.page(limit=limit, cursor=cursor)

    @get("/{name:str}", summary="Read a recipe", responses=errors(404, REDIS))
    async def get_recipe(self, name: RecipeName, recipe_store: Recipes) -> StoredRecipe:
        """The recipe registered under ``name``."""
        stored = await recipe_store.get(name)
        if stored is None:
            raise NotFound(f"no recipe {name[:80]!r}")
        return stored


class EffectController(Controller):
    """The effects this server renders."""

    path = "/effects"
    tags = ["recipes"]

    @get("/", summary="List effects with their parameters", responses=errors())
    async def list_effects(self, effects: Effects) -> Page[EffectInfo]:
        """Each effect's name, version, content hash, media kinds and JSON-Schema params:
        every one, in one page."""
        return Page(items=[effect.info() for effect in effects])

    @get("/{name:str}", summary="Read an effect", responses=errors(404))
    async def get_effect(self, name: EffectName, effects: Effects) -> EffectInfo:
        """One effect, its parameters as JSON Schema."""
        if name not in effects:
            raise NotFound(f"no effect {name[:80]!r}")
        return effects.get(name).info()
