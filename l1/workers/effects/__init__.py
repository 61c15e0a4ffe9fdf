"""The effects a worker can render, by name."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from l1.errors import L1Error
from l1.workers.effects.basic import basic_effects
from l1.workers.effects.library import media_effects
from l1.workers.effects.registry import Effect, EffectInfo, EffectRegistry

__all__ = ["Effect", "EffectInfo", "EffectRegistry", "default_effects"]


def default_effects(extra_modules: Sequence[str] = ()) -> EffectRegistry:
    """Every effect this version of L1 ships, plus those of ``extra_modules``.

    Each extra module is named ``package.module:function`` (``L1_EFFECT_MODULES``);
    the function returns a list of :class:`Effect`. API and workers must load the same.
    """
    return EffectRegistry([*basic_effects(), *media_effects(), *_load(extra_modules)])


def _load(specs: Sequence[str]) -> list[Effect]:
    effects: list[Effect] = []
    for spec in specs:
        module_name, _, function = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), function or "effects")
        except (ImportError, AttributeError) as error:
            raise L1Error(
                f"cannot load effects from {spec!r} (L1_EFFECT_MODULES): {error}"
            ) from None
        effects.extend(factory())
    return effects
