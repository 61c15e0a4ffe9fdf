"""Recipes: small YAML documents in the Art DAG shape, validated into a graph of steps.

A recipe names its ``inputs``, lists ``nodes`` (each ``id``, ``type``, ``config``,
``inputs``) and says which node is the ``output``. Every node type other than SOURCE
is carried out by a registered effect, so a step is always "effect E with params P
over the outputs of these nodes". A recipe's content hash is the SHA3-256 of its
canonical JSON form; a node's ``cache_id`` is the SHA3-256 of its type, effect, params
and input ids, so the same step over the same inputs has the same id in any recipe.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import yaml

from l1.errors import Conflict, InvalidInput, Unprocessable
from l1.identifiers import canonical, canonical_json, sha3_hex

if TYPE_CHECKING:
    from l1.effects import Effect, EffectRegistry

__all__ = [
    "NODE_TYPES",
    "Node",
    "Recipe",
    "RecipeInput",
    "Step",
    "compile_steps",
    "effect_recipe",
    "load_document",
    "parse_recipe",
    "recipe_hash",
]

Identifier = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]

# Node type → the effect that carries it out (EFFECT names its own in config).
NODE_TYPES: dict[str, str | None] = {
    "SOURCE": None,
    "EFFECT": None,
    "SEGMENT": "segment",
    "RESIZE": "resize",
    "SEQUENCE": "concatenate",
    "BLEND": "blend",
    "MUX": "mux",
}


class RecipeInput(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A named input the caller binds to a content hash or asset."""

    name: Identifier
    description: str = ""


class Node(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One node of the graph."""

    id: Identifier
    type: str
    config: dict[str, Any] = {}
    inputs: list[Identifier] = []


class Recipe(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A recipe document."""

    name: Identifier
    version: str = "1"
    description: str = ""
    inputs: Annotated[list[RecipeInput], msgspec.Meta(min_length=1, max_length=32)]
    nodes: Annotated[list[Node], msgspec.Meta(min_length=1, max_length=256)]
    output: Identifier


class Step(msgspec.Struct, frozen=True, kw_only=True):
    """A node ready to render: an effect over other nodes' outputs."""

    node_id: str
    cache_id: str
    effect: str
    effect_hash: str
    params: dict[str, Any]
    inputs: list[str]  # node ids; SOURCE nodes stand for the bound inputs


def recipe_hash(recipe: Recipe) -> str:
    """The recipe's content hash: SHA3-256 of its canonical JSON form."""
    return sha3_hex(canonical_json(recipe))


# libyaml's loader where it is installed (it is, with PyYAML's wheels): many times
# faster than the pure-Python one.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_DEPTH = 32
MAX_EVENTS = 20_000  # a recipe holds at most 256 nodes


def load_document(document: bytes) -> Any:
    """The YAML (or JSON) ``document`` as plain data, refusing what would cost far more
    than its size: aliases (``*name`` can expand a few hundred bytes to gigabytes once
    walked), nesting deeper than :data:`MAX_DEPTH`, more than :data:`MAX_EVENTS` nodes."""
    depth = 0
    for count, event in enumerate(yaml.parse(document, Loader=_LOADER), start=1):
        if isinstance(event, yaml.AliasEvent):
            raise InvalidInput(f"a recipe may not use YAML aliases (*name), {_at(event)}")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise InvalidInput(f"the recipe nests deeper than {MAX_DEPTH} levels, {_at(event)}")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        if count > MAX_EVENTS:
            raise InvalidInput(f"the recipe has more than {MAX_EVENTS:,} YAML nodes")
    return yaml.load(document, Loader=_LOADER)


def _at(event: yaml.Event) -> str:
    mark = event.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"


def parse_recipe(document: bytes, effects: EffectRegistry) -> Recipe:
    """Parse YAML (or JSON) and validate the graph; 422 names the node at fault, 409 a
    name that belongs to an effect. CPU-bound: the API runs it in a thread."""
    try:
        recipe = msgspec.convert(load_document(document), Recipe)
    except msgspec.ValidationError as error:
        raise Unprocessable(f"invalid recipe: {error}") from None
    except yaml.YAMLError as error:
        raise InvalidInput(f"the recipe is not YAML or JSON: {error}") from None
    if recipe.name in effects:
        raise Conflict(f"{recipe.name!r} is the name of an effect; give the recipe another")
    compile_steps(recipe, effects, {})  # validates every node
    return recipe


def effect_recipe(effect: Effect) -> Recipe:
    """A bare effect used as a recipe: its inputs, then the effect."""
    names = ["input"] if effect.inputs == 1 else [f"input{i + 1}" for i in range(effect.inputs)]
    return Recipe(
        name=effect.name,
        version=effect.version,
        description=effect.description,
        inputs=[RecipeInput(name=name) for name in names],
        nodes=[
            *(Node(id=name, type="SOURCE", config={"input": name}) for name in names),
            Node(id="output", type="EFFECT", config={"effect": effect.name}, inputs=names),
        ],
        output="output",
    )


def compile_steps(
    recipe: Recipe,
    effects: EffectRegistry,
    bindings: Mapping[str, str],
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Step]:
    """The recipe's steps in dependency order, with cache ids over ``bindings``
    (recipe input name → content hash). ``overrides`` maps node id → params."""
    nodes = _index(recipe)
    steps: dict[str, Step] = {}
    ids: dict[str, str] = {}
    for node in _topological(recipe, nodes):
        if node.type == "SOURCE":
            ids[node.id] = _source_id(recipe, node, bindings)
            continue
        effect = _effect_of(node, effects)
        params = _params(node, effect, (overrides or {}).get(node.id, {}))
        if len(node.inputs) != effect.inputs:
            raise Unprocessable(
                f"node {node.id!r}: {effect.name} takes {effect.inputs} input(s), "
                f"not {len(node.inputs)}"
            )
        cache_id = sha3_hex(
            canonical_json(
                {
                    "type": node.type,
                    "effect": effect.content_hash,
                    "params": params,
                    "inputs": [ids[i] for i in node.inputs],
                }
            )
        )
        ids[node.id] = cache_id
        steps[node.id] = Step(
            node_id=node.id,
            cache_id=cache_id,
            effect=effect.name,
            effect_hash=effect.content_hash,
            params=params,
            inputs=list(node.inputs),
        )
    if recipe.output not in steps:
        raise Unprocessable(f"output {recipe.output!r} must be a node that renders")
    return list(steps.values())


def _index(recipe: Recipe) -> dict[str, Node]:
    nodes: dict[str, Node] = {}
    names = {i.name for i in recipe.inputs}
    for node in recipe.nodes:
        if node.id in nodes:
            raise Unprocessable(f"node {node.id!r} is defined twice")
        if node.type not in NODE_TYPES:
            known = ", ".join(NODE_TYPES)
            raise Unprocessable(f"node {node.id!r}: unknown type {node.type!r} ({known})")
        if node.type == "SOURCE" and node.config.get("input", node.id) not in names:
            raise Unprocessable(
                f"node {node.id!r}: no recipe input named {node.config.get('input', node.id)!r}"
            )
        nodes[node.id] = node
    for node in recipe.nodes:
        for source in node.inputs:
            if source not in nodes:
                raise Unprocessable(f"node {node.id!r}: input {source!r} is not a node")
    if recipe.output not in nodes:
        raise Unprocessable(f"output {recipe.output!r} is not a node")
    return nodes


def _topological(recipe: Recipe, nodes: dict[str, Node]) -> list[Node]:
    order: list[Node] = []
    state: dict[str, str] = {}

    def visit(node_id: str) -> None:
        if state.get(node_id) == "done":
            return
        if state.get(node_id) == "visiting":
            raise Unprocessable(f"node {node_id!r} is part of a cycle")
        state[node_id] = "visiting"
        for source in nodes[node_id].inputs:
            visit(source)
        state[node_id] = "done"
        order.append(nodes[node_id])

    for node in recipe.nodes:
        visit(node.id)
    return order


def _source_id(recipe: Recipe, node: Node, bindings: Mapping[str, str]) -> str:
    name = node.config.get("input", node.id)
    # Unbound while a recipe is only being validated: any stable placeholder will do.
    return bindings.get(name, f"unbound:{name}")


def _effect_of(node: Node, effects: EffectRegistry) -> Effect:
    name = node.config.get("effect") if node.type == "EFFECT" else NODE_TYPES[node.type]
    if not isinstance(name, str) or name not in effects:
        raise Unprocessable(f"node {node.id!r}: unknown effect {name!r}")
    return effects.get(name)


def _params(node: Node, effect: Effect, override: Mapping[str, Any]) -> dict[str, Any]:
    given = node.config.get("params", {}) if node.type == "EFFECT" else node.config
    if not isinstance(given, dict):
        raise Unprocessable(f"node {node.id!r}: params must be a mapping")
    try:
        parsed = effect.parse_params({**given, **override})
    except Unprocessable as error:
        raise Unprocessable(f"node {node.id!r}: {error}") from None
    # In canonical form, as its cache id has it: the step renders what the id names.
    return canonical(msgspec.to_builtins(parsed))
