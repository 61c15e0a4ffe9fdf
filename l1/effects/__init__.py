"""Effects: the catalogue of what L1 renders, each effect's parameters and identity.

Importing this package is cheap (no media libraries): the API lists, validates and
hashes effects with it. The render code lives in :mod:`l1.effects.render`, built on
the PyAV and Pillow pipeline of :mod:`l1.effects.media`; a worker imports those.
"""

from l1.effects.catalogue import default_effects
from l1.effects.limits import MediaLimits
from l1.effects.registry import (
    Effect,
    EffectInfo,
    EffectRegistry,
    MediaError,
    Progress,
    RenderContext,
)

__all__ = [
    "Effect",
    "EffectInfo",
    "EffectRegistry",
    "MediaError",
    "MediaLimits",
    "Progress",
    "RenderContext",
    "default_effects",
]
