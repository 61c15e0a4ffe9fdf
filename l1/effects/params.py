"""Every shipped effect's parameters, as msgspec Structs.

The API validates runs against these and shows them as JSON Schema; the workers decode
the same Structs. Nothing here needs the media libraries.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from l1.effects.formats import Format, VideoCodec, check_codec
from l1.effects.limits import MAX_PIXELS

__all__ = [
    "BlendMode",
    "BlendParams",
    "BlurParams",
    "ConcatenateParams",
    "CropParams",
    "FactorParams",
    "FrameParams",
    "HueShiftParams",
    "JoinParams",
    "MuxParams",
    "NoParams",
    "PixelateParams",
    "PosterizeParams",
    "ResizeParams",
    "RotateParams",
    "SegmentParams",
    "SepiaParams",
    "SharpenParams",
    "SpeedParams",
    "VideoEncoding",
    "VideoParams",
]

Color = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$",
        description="#rrggbb, or #rrggbbaa with alpha",
    ),
]
Factor = Annotated[float, msgspec.Meta(ge=0.0, le=10.0, description="1 leaves the image as is")]
Side = Annotated[int, msgspec.Meta(ge=1, le=65_535)]
Preset = Literal[
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
]
BlendMode = Literal[
    "normal", "multiply", "screen", "overlay", "add", "difference", "lighten", "darken"
]


class NoParams(msgspec.Struct, forbid_unknown_fields=True):
    """The parameters of an effect that takes none."""


# --- Video output ---------------------------------------------------------------------


class VideoEncoding(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the output is written: its format and video codec (unset: as the input's, see
    :mod:`l1.effects.formats`), and the encoder's quality and speed."""

    format: (
        Annotated[Format, msgspec.Meta(description="output format; unset follows the input")] | None
    ) = None
    codec: (
        Annotated[VideoCodec, msgspec.Meta(description="video codec; unset: the format's own")]
        | None
    ) = None
    crf: Annotated[
        int, msgspec.Meta(ge=0, le=51, description="quality: lower is better, 0 is lossless")
    ] = 23
    preset: Annotated[Preset, msgspec.Meta(description="slower presets compress better")] = (
        "veryfast"
    )

    def __post_init__(self) -> None:
        check_codec(self.format, self.codec)


class VideoParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Parameters of an effect that can write video: the encoder settings."""

    encoding: VideoEncoding = msgspec.field(default_factory=VideoEncoding)


# --- Video-only effects ---------------------------------------------------------------


class SegmentParams(VideoParams, kw_only=True):
    """The part of the clip from ``start`` lasting ``duration`` seconds (to the end if unset)."""

    start: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = 0.0
    duration: Annotated[float, msgspec.Meta(gt=0, le=86_400)] | None = None


class SpeedParams(VideoParams, kw_only=True):
    """Play ``factor`` times faster (0.5 is half speed); frames are dropped or repeated
    to keep the frame rate, and the audio is time-stretched keeping its pitch."""

    factor: Annotated[float, msgspec.Meta(ge=0.25, le=4.0)] = 2.0


class ConcatenateParams(VideoParams, kw_only=True):
    """The first clip then the second, at the first clip's size and frame rate."""


class JoinParams(VideoParams, kw_only=True):
    """The parts of a split render end to end; ``encoding.format`` is the whole
    render's (the scheduler resolves it), and the video is copied, not encoded."""


# --- Per-frame effects ----------------------------------------------------------------


class FrameParams(VideoParams, kw_only=True):
    """A per-frame effect with no parameters of its own (``encoding`` applies to video)."""


class SepiaParams(FrameParams, kw_only=True):
    """Sepia tone; ``strength`` 0 keeps the colours, 1 is full sepia."""

    strength: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 1.0


class BlurParams(FrameParams, kw_only=True):
    """Gaussian blur of ``radius`` pixels."""

    radius: Annotated[float, msgspec.Meta(ge=0.0, le=250.0)] = 2.0


class SharpenParams(FrameParams, kw_only=True):
    """Unsharp mask: ``amount`` 1 adds the full detail back once, over ``radius`` pixels."""

    amount: Annotated[float, msgspec.Meta(ge=0.0, le=10.0)] = 1.0
    radius: Annotated[float, msgspec.Meta(gt=0.0, le=50.0)] = 2.0


class FactorParams(FrameParams, kw_only=True):
    """A multiplier: below 1 lessens, above 1 strengthens."""

    factor: Factor = 1.5


class HueShiftParams(FrameParams, kw_only=True):
    """Rotate every hue by ``degrees`` around the colour wheel."""

    degrees: Annotated[float, msgspec.Meta(ge=-360.0, le=360.0)] = 90.0


class PosterizeParams(FrameParams, kw_only=True):
    """Keep ``bits`` bits per channel (2**bits levels)."""

    bits: Annotated[int, msgspec.Meta(ge=1, le=8)] = 3


class PixelateParams(FrameParams, kw_only=True):
    """Average the picture over square blocks of ``block_size`` pixels."""

    block_size: Annotated[int, msgspec.Meta(ge=1, le=4096)] = 8


class ResizeParams(FrameParams, kw_only=True):
    """Resize to ``width`` x ``height``. ``fit``: inside the box, aspect kept (one side
    matches); ``fill``: cover the box, aspect kept, overflow cropped; ``stretch``: exactly
    the box; ``pad``: fit then pad to exactly the box with ``pad_color``. With only one
    side given, the other follows the aspect ratio."""

    width: Side | None = None
    height: Side | None = None
    mode: Literal["fit", "fill", "stretch", "pad"] = "fit"
    pad_color: Color = "#000000"

    def __post_init__(self) -> None:
        if self.width is None and self.height is None:
            raise ValueError("resize needs a width, a height, or both")
        if (self.width or 1) * (self.height or 1) > MAX_PIXELS:
            raise ValueError(f"width x height exceeds the {MAX_PIXELS // 1_000_000} MP limit")


class RotateParams(FrameParams, kw_only=True):
    """Rotate clockwise by ``degrees``; ``expand`` grows the canvas to hold the whole
    picture, and ``fill`` colours the uncovered corners."""

    degrees: Annotated[float, msgspec.Meta(ge=-360.0, le=360.0)] = 90.0
    expand: bool = True
    fill: Color = "#000000"


class CropParams(FrameParams, kw_only=True):
    """The box from (``left``, ``top``) of ``width`` x ``height`` pixels; an unset
    width or height runs to the picture's edge."""

    left: Annotated[int, msgspec.Meta(ge=0, le=65_535)] = 0
    top: Annotated[int, msgspec.Meta(ge=0, le=65_535)] = 0
    width: Side | None = None
    height: Side | None = None


# --- Two-input effects ----------------------------------------------------------------


class BlendParams(VideoParams, kw_only=True):
    """Lay the second input over the first. ``mode`` picks how colours combine and
    ``opacity`` how much of the result shows (0 leaves the first input as it was, 1 is
    the full blend). ``shorter`` says what a second video shorter than the first does
    once it ends: start again (``loop``) or keep showing its last frame (``hold``)."""

    mode: BlendMode = "normal"
    opacity: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.5
    shorter: Literal["loop", "hold"] = "loop"


class MuxParams(VideoParams, kw_only=True):
    """The first input's video with the second input's audio. ``encoding`` applies only
    when the video has to be re-encoded (MP4 cannot hold its codec)."""
