"""Turning a submission into a plan: which recipe, which inputs, which steps."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from l1.errors import InvalidInput, Unprocessable
from l1.identifiers import is_content_hash, sha3_hex
from l1.runs.recipes import Recipe, compile_steps, effect_recipe
from l1.schemas import InputRef, RunSubmission, StepState

if TYPE_CHECKING:
    from l1.assets import Asset
    from l1.effects import EffectRegistry
    from l1.runs.recipe_store import RecipeStore

__all__ = ["Plan", "Planner"]

# Long hex strings that are not exactly a content hash are malformed hashes, not names.
_HEXISH = re.compile(r"^[0-9a-fA-F]{16,}$")


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a run needs before it is recorded."""

    recipe: str
    recipe_hash: str
    run_hash: str  # what the run id is derived from: the recipe, and params if any
    inputs: list[InputRef]
    bindings: dict[str, str]
    steps: list[StepState]


class Planner:
    """Resolves recipes, inputs and params against effects, recipes and assets.

    Whether the cache holds the inputs is not looked at here: the run service looks once
    it holds them, which is the look that counts (a deletion may come in between).
    """

    def __init__(
        self,
        *,
        effects: EffectRegistry,
        recipes: RecipeStore,
        assets: dict[str, Asset],
    ) -> None:
        self._effects = effects
        self._recipes = recipes
        self._assets = assets

    async def plan(self, submission: RunSubmission) -> Plan:
        """The plan for ``submission``; 4xx errors name what is wrong."""
        recipe, recipe_hash = await self._recipe(submission.recipe)
        named = self._bind(recipe, submission.inputs)
        hashes = {name: ref.content_hash for name, ref in named.items()}
        bare = submission.recipe in self._effects
        overrides = self._overrides(recipe, submission.params, bare=bare)
        steps = compile_steps(recipe, self._effects, hashes, overrides)
        # A bare effect over one input keeps the effect's hash as the run's recipe hash;
        # anything else is also keyed by its output step, which covers params and order.
        run_hash = recipe_hash
        if submission.params or len(named) > 1 or not bare:
            run_hash = sha3_hex(f"{recipe_hash}:{steps[-1].cache_id}".encode())
        return Plan(
            recipe=recipe.name,
            recipe_hash=recipe_hash,
            run_hash=run_hash,
            inputs=list(named.values()),
            bindings={
                node.id: hashes[node.config.get("input", node.id)]
                for node in recipe.nodes
                if node.type == "SOURCE"
            },
            steps=[
                StepState(
                    node_id=s.node_id,
                    cache_id=s.cache_id,
                    effect=s.effect,
                    effect_hash=s.effect_hash,
                    params=s.params,
                    inputs=s.inputs,
                    segmentable=self._effects.get(s.effect).segmentable,
                )
                for s in steps
            ],
        )

    async def _recipe(self, name: str) -> tuple[Recipe, str]:
        if name in self._effects:
            effect = self._effects.get(name)
            return effect_recipe(effect), effect.content_hash
        stored = await self._recipes.get(name)
        if stored is None:
            known = ", ".join(sorted(e.name for e in self._effects))
            raise Unprocessable(
                f"unknown recipe {name[:80]!r}: not an effect ({known}) "
                "nor a registered recipe (GET /recipes)"
            )
        return stored.recipe, stored.content_hash

    def _bind(self, recipe: Recipe, given: list[str] | dict[str, str]) -> dict[str, InputRef]:
        names = [i.name for i in recipe.inputs]
        if isinstance(given, list):
            if len(given) != len(names):
                raise Unprocessable(
                    f"recipe {recipe.name!r} takes {len(names)} input(s) "
                    f"({', '.join(names)}), not {len(given)}"
                )
            pairs = dict(zip(names, given, strict=True))
        else:
            unknown = sorted(set(given) - set(names))
            missing = [n for n in names if n not in given]
            if unknown or missing:
                raise Unprocessable(
                    f"recipe {recipe.name!r} takes inputs {', '.join(names)}"
                    + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                    + (f"; missing: {', '.join(missing)}" if missing else "")
                )
            pairs = given
        return {name: self._resolve(value) for name, value in pairs.items()}

    def _resolve(self, value: str) -> InputRef:
        if (asset := self._assets.get(value)) is not None:
            return InputRef(name=value, content_hash=asset.content_hash)
        if is_content_hash(value):
            return InputRef(name=value, content_hash=value)
        if _HEXISH.fullmatch(value):
            raise InvalidInput(
                f"input {value[:80]!r} is not a content hash (64 lowercase hex characters)"
            )
        known = ", ".join(sorted(self._assets))
        raise Unprocessable(
            f"input {value[:80]!r} is neither a content hash nor a known asset ({known})"
        )

    @staticmethod
    def _overrides(
        recipe: Recipe, params: Mapping[str, Any], *, bare: bool
    ) -> dict[str, dict[str, Any]]:
        """Params by node: a bare effect's own params (``{"encoding.crf": 18}`` for
        ``{"encoding": {"crf": 18}}``), or ``{"node": {...}}`` / ``{"node.param": value}``
        for a recipe."""
        if not params:
            return {}
        if bare:
            return {recipe.output: _nested(params)}
        nodes = {node.id for node in recipe.nodes}
        overrides: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            node, _, param = key.partition(".")
            if node not in nodes:
                raise Unprocessable(f"params: {key!r} names no node of recipe {recipe.name!r}")
            if param:
                overrides.setdefault(node, {})[param] = value
            elif isinstance(value, dict):
                overrides.setdefault(node, {}).update(value)
            else:
                raise Unprocessable(f"params: {key!r} must be node.param or a mapping")
        return overrides


def _nested(params: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted keys as nested mappings: ``{"a.b": 1}`` is ``{"a": {"b": 1}}``."""
    nested: dict[str, Any] = {}
    for key, value in params.items():
        *parents, last = key.split(".")
        into = nested
        for part in parents:
            child = into.setdefault(part, {})
            if not isinstance(child, dict):
                raise Unprocessable(f"params: {key!r} sets a part of {part!r}, which is a value")
            into = child
        if isinstance(into.get(last), dict) and isinstance(value, dict):
            into[last].update(value)
        elif last in into:
            raise Unprocessable(f"params: {key!r} is given twice")
        else:
            into[last] = value
    return nested
