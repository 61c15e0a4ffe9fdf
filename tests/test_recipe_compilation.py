"""Recipes compiled to steps, without servers: order, cache ids, and the errors that
name the node at fault."""

from __future__ import annotations

import pytest

from l1.effects import default_effects
from l1.errors import InvalidInput, Unprocessable
from l1.runs.recipes import compile_steps, effect_recipe, parse_recipe, recipe_hash

EFFECTS = default_effects()
PICTURE = "a" * 64
OTHER = "b" * 64

CHAIN = b"""
name: chain
inputs: [{name: picture}]
nodes:
  - {id: toned, type: EFFECT, config: {effect: sepia}, inputs: [small]}
  - {id: small, type: RESIZE, config: {width: 64, height: 48}, inputs: [src]}
  - {id: src, type: SOURCE, config: {input: picture}}
output: toned
"""

SAME_FIRST_STEP = b"""
name: other
description: Another recipe that shares the resize step.
inputs: [{name: photo}]
nodes:
  - {id: in, type: SOURCE, config: {input: photo}}
  - {id: small, type: RESIZE, config: {width: 64, height: 48}, inputs: [in]}
  - {id: grey, type: EFFECT, config: {effect: grayscale}, inputs: [small]}
output: grey
"""


def test_steps_come_in_dependency_order_whatever_the_listing() -> None:
    steps = compile_steps(parse_recipe(CHAIN, EFFECTS), EFFECTS, {"picture": PICTURE})
    assert [s.node_id for s in steps] == ["small", "toned"]
    assert steps[1].inputs == ["small"] and steps[0].inputs == ["src"]
    assert steps[0].params["width"] == 64 and steps[0].effect == "resize"


def test_a_step_has_the_same_cache_id_in_any_recipe_over_the_same_input() -> None:
    chain = compile_steps(parse_recipe(CHAIN, EFFECTS), EFFECTS, {"picture": PICTURE})
    other = parse_recipe(SAME_FIRST_STEP, EFFECTS)
    shared = compile_steps(other, EFFECTS, {"photo": PICTURE})
    assert chain[0].cache_id == shared[0].cache_id
    assert chain[1].cache_id != shared[1].cache_id
    elsewhere = compile_steps(other, EFFECTS, {"photo": OTHER})
    assert elsewhere[0].cache_id != shared[0].cache_id


def test_params_and_overrides_change_the_cache_id() -> None:
    recipe = parse_recipe(CHAIN, EFFECTS)
    plain = compile_steps(recipe, EFFECTS, {"picture": PICTURE})
    louder = compile_steps(recipe, EFFECTS, {"picture": PICTURE}, {"toned": {"strength": 0.5}})
    assert plain[0].cache_id == louder[0].cache_id
    assert plain[1].cache_id != louder[1].cache_id
    assert louder[1].params["strength"] == 0.5


def test_the_recipe_hash_covers_its_whole_document() -> None:
    recipe = parse_recipe(CHAIN, EFFECTS)
    assert recipe_hash(recipe) == recipe_hash(parse_recipe(CHAIN, EFFECTS))
    renamed = parse_recipe(CHAIN.replace(b"name: chain", b"name: chain2"), EFFECTS)
    assert recipe_hash(recipe) != recipe_hash(renamed)


def test_a_bare_effect_is_a_one_step_recipe() -> None:
    blend = EFFECTS.get("blend")
    recipe = effect_recipe(blend)
    steps = compile_steps(recipe, EFFECTS, {"input1": PICTURE, "input2": OTHER})
    assert [s.effect for s in steps] == ["blend"] and steps[0].inputs == ["input1", "input2"]
    assert steps[0].effect_hash == blend.content_hash


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ((b"inputs: [src]}", b"inputs: [toned]}"), "cycle"),
        ((b"effect: sepia", b"effect: nope"), "node 'toned': unknown effect 'nope'"),
        ((b"type: RESIZE", b"type: SHRINK"), "node 'small': unknown type 'SHRINK'"),
        ((b"inputs: [small]}", b"inputs: [gone]}"), "node 'toned': input 'gone' is not a node"),
        ((b"output: toned", b"output: src"), "must be a node that renders"),
        ((b"width: 64, height: 48", b"width: 0"), "node 'small'"),
        ((b"input: picture", b"input: photo"), "no recipe input named 'photo'"),
    ],
)
def test_invalid_graphs_name_the_node_at_fault(change: tuple[bytes, bytes], message: str) -> None:
    with pytest.raises(Unprocessable, match=message):
        parse_recipe(CHAIN.replace(*change), EFFECTS)


def test_yaml_aliases_and_non_yaml_are_refused() -> None:
    with pytest.raises(InvalidInput, match="aliases"):
        parse_recipe(b"a: &x [1]\nb: *x\n", EFFECTS)
    with pytest.raises(InvalidInput, match="not YAML"):
        parse_recipe(b"{unclosed: [", EFFECTS)
