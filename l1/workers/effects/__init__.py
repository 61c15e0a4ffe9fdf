"""The effects a worker can render, by name."""

from __future__ import annotations

from l1.workers.effects.basic import basic_effects
from l1.workers.effects.registry import Effect, EffectInfo, EffectRegistry

__all__ = ["Effect", "EffectInfo", "EffectRegistry", "default_effects"]


def default_effects() -> EffectRegistry:
    """Every effect this version of L1 ships."""
    return EffectRegistry([*basic_effects()])
