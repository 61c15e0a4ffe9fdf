"""The media effects library: every image and video effect, ready to register."""

from __future__ import annotations

from l1.workers.effects.compose import compose_effects
from l1.workers.effects.image import image_effects
from l1.workers.effects.registry import Effect
from l1.workers.effects.video import video_effects

__all__ = ["media_effects"]


def media_effects() -> list[Effect]:
    """The per-frame effects (image or video input), the video-only ones, and the
    two-input ``blend`` and ``mux``."""
    return [*image_effects(), *video_effects(), *compose_effects()]
