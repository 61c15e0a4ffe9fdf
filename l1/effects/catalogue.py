"""The effects this version of L1 ships: names, versions, parameters, what they accept,
and where their render code lives.

Bump an effect's ``version`` when its output changes for the same inputs and params:
that is what invalidates its cached renders (see :mod:`l1.effects.identity`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from l1.assets import known_assets
from l1.effects import params as p
from l1.effects.registry import Effect, EffectRegistry, MediaKind, load_effects

__all__ = ["basic_effects", "default_effects", "frame_effects", "media_effects"]

IMAGE_OR_VIDEO: frozenset[MediaKind] = frozenset({"image", "video"})
VIDEO: frozenset[MediaKind] = frozenset({"video"})

# name, description, params, and the class in l1.effects.render: frames (colour) or
# shapes
_FRAME_EFFECTS: list[tuple[str, str, type[p.FrameParams], str]] = [
    ("grayscale", "Shades of grey.", p.FrameParams, "frames:Grayscale"),
    ("invert", "The colour negative.", p.FrameParams, "frames:Invert"),
    ("sepia", "Old-photograph brown tones.", p.SepiaParams, "frames:Sepia"),
    ("blur", "Gaussian blur of a radius in pixels.", p.BlurParams, "frames:Blur"),
    ("sharpen", "Unsharp-mask sharpening.", p.SharpenParams, "frames:Sharpen"),
    ("brightness", "Scale brightness by a factor.", p.FactorParams, "frames:Brightness"),
    ("contrast", "Scale contrast about mid grey by a factor.", p.FactorParams, "frames:Contrast"),
    ("saturation", "Scale colour saturation by a factor.", p.FactorParams, "frames:Saturation"),
    (
        "hue_shift",
        "Turn hues by degrees around the YCbCr colour wheel.",
        p.HueShiftParams,
        "frames:HueShift",
    ),
    ("posterize", "Fewer levels per colour channel.", p.PosterizeParams, "frames:Posterize"),
    ("pixelate", "Square blocks of average colour.", p.PixelateParams, "frames:Pixelate"),
    ("resize", "Resize to a box: fit, fill, stretch or pad.", p.ResizeParams, "shapes:Resize"),
    ("rotate", "Rotate clockwise by degrees.", p.RotateParams, "shapes:Rotate"),
    ("flip", "Upside down (vertical flip).", p.FrameParams, "shapes:Flip"),
    ("mirror", "Left-right mirror image (horizontal flip).", p.FrameParams, "shapes:Mirror"),
    ("crop", "Cut out a box.", p.CropParams, "shapes:Crop"),
]


# Version 3 of every effect that writes video: the output's format follows the input
# (WebM stays WebM, animations stay animated) or ``encoding.format``, sound is copied
# only into containers that take it, and every per-frame effect filters its frames with
# libavfilter; contrast turns about mid-grey and hue_shift turns the YUV colour plane, the
# same for stills and videos. Other bytes for the same parameters, so earlier cached
# renders must not be reused.
_VIDEO_VERSION = "3"


def basic_effects() -> list[Effect]:
    """``identity`` and ``dog``: the two that prove the plumbing."""
    return [
        Effect(
            name="identity",
            version="1",
            description="The output is the input: same bytes, same hash.",
            render="l1.effects.render.basic:identity",
            inline=True,
        ),
        Effect(
            name="dog",
            version="1",
            description="Whatever the input, the output is the dog picture.",
            render="l1.effects.render.basic:dog",
            inline=True,
            # The effect is its picture, so its hash is the picture's.
            content_hash=known_assets()["dog"].content_hash,
        ),
    ]


def frame_effects() -> list[Effect]:
    """The per-frame effects: each takes an image or a video."""
    return [
        Effect(
            name=name,
            version=_VIDEO_VERSION,
            description=description,
            render=f"l1.effects.render.{reference}",
            params=params,
            accepts=IMAGE_OR_VIDEO,
            segmentable=True,
        )
        for name, description, params, reference in _FRAME_EFFECTS
    ]


def _effect(name: str, description: str, render: str, params: Any, **options: Any) -> Effect:
    return Effect(
        name=name,
        version=_VIDEO_VERSION,
        description=description,
        render=render,
        params=params,
        **options,
    )


def media_effects() -> list[Effect]:
    """Every image and video effect: per-frame, video-only, and the two-input ones."""
    return [
        *frame_effects(),
        _effect(
            "segment",
            "Cut the part of a clip from start for duration seconds.",
            "l1.effects.render.video:segment",
            p.SegmentParams,
            accepts=VIDEO,
        ),
        _effect(
            "speed",
            "Play a clip faster or slower; audio is time-stretched.",
            "l1.effects.render.video:speed",
            p.SpeedParams,
            accepts=VIDEO,
        ),
        _effect(
            "concatenate",
            "Join two clips; the output has the first clip's size and frame rate.",
            "l1.effects.render.video:concatenate",
            p.ConcatenateParams,
            accepts=VIDEO,
            inputs=2,
        ),
        Effect(
            name="join",
            version="1",
            description="Puts a split render's parts back together (the scheduler adds it)",
            render="l1.effects.render.join:join",
            params=p.JoinParams,
            accepts=VIDEO,
            inputs=2,
        ),
        _effect(
            "blend",
            "Lay the second input over the first with a blend mode and opacity.",
            "l1.effects.render.blend:blend",
            p.BlendParams,
            accepts=IMAGE_OR_VIDEO,
            inputs=2,
        ),
        _effect(
            "mux",
            "The first input's video with the second input's audio, cut to the video.",
            "l1.effects.render.mux:mux",
            p.MuxParams,
            accepts=frozenset({"video", "audio"}),
            inputs=2,
        ),
    ]


def default_effects(extra_modules: Sequence[str] = ()) -> EffectRegistry:
    """Every effect this version of L1 ships, plus those of ``extra_modules``
    (``L1_EFFECT_MODULES``). API and workers must load the same."""
    return EffectRegistry([*basic_effects(), *media_effects(), *load_effects(extra_modules)])
