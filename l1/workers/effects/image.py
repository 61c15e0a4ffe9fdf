"""Per-frame effects: each is a parameters Struct and a pure function on a Pillow
image (``frame_fn(image, params) -> image``), rendered on an image or, frame by
frame, on a video.

Frame functions take RGB or RGBA images and keep the alpha channel where it makes
sense; filters that mix neighbouring pixels work on premultiplied colour, so
transparent pixels do not bleed into their neighbours. Image outputs are PNG
(lossless); video outputs are as :mod:`l1.workers.effects.video` writes them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from l1.workers.effects import media, video
from l1.workers.effects.media import MAX_PIXELS, MediaError, open_image, probe_input
from l1.workers.effects.registry import Effect, Progress
from l1.workers.effects.video import VideoParams, map_frames

__all__ = [
    "IMAGE_OUTPUT_NAME",
    "BlurParams",
    "CropParams",
    "FactorParams",
    "FrameEffect",
    "FrameParams",
    "HueShiftParams",
    "PixelateParams",
    "PosterizeParams",
    "ResizeParams",
    "RotateParams",
    "SepiaParams",
    "SharpenParams",
    "blur",
    "brightness",
    "contrast",
    "crop",
    "flip",
    "frame_effects",
    "grayscale",
    "hue_shift",
    "image_effects",
    "invert",
    "mirror",
    "pixelate",
    "posterize",
    "render_frames",
    "resize",
    "rotate",
    "saturation",
    "save_png",
    "sepia",
    "sharpen",
]

IMAGE_OUTPUT_NAME = "output.png"
_ACCEPTS: frozenset[Any] = frozenset({"image", "video"})
_RESAMPLE = Image.Resampling.LANCZOS

Color = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$",
        description="#rrggbb, or #rrggbbaa with alpha",
    ),
]
Factor = Annotated[float, msgspec.Meta(ge=0.0, le=10.0, description="1 leaves the image as is")]
Side = Annotated[int, msgspec.Meta(ge=1, le=65_535)]


# --- Parameters -----------------------------------------------------------------------


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


# --- Frame functions ------------------------------------------------------------------


def grayscale(image: Image.Image, params: FrameParams) -> Image.Image:
    """Luma (ITU-R 601) in all three channels."""
    return _on_colour(image, lambda rgb: rgb.convert("L").convert("RGB"))


def invert(image: Image.Image, params: FrameParams) -> Image.Image:
    """The negative; applying it twice gives the original back."""
    return _on_colour(image, ImageOps.invert)


_SEPIA = (
    (0.393, 0.769, 0.189),
    (0.349, 0.686, 0.168),
    (0.272, 0.534, 0.131),
)


def sepia(image: Image.Image, params: SepiaParams) -> Image.Image:
    """The classic sepia matrix, blended with the original by ``strength``."""
    s = params.strength
    rows = [
        [(1 - s) * (row == col) + s * _SEPIA[row][col] for col in range(3)] + [0.0]
        for row in range(3)
    ]
    matrix = tuple(value for row in rows for value in row)
    # Pillow applies (and clips) a colour matrix in C, far quicker than numpy on video.
    return _on_colour(image, lambda rgb: rgb.convert("RGB", matrix))


def blur(image: Image.Image, params: BlurParams) -> Image.Image:
    """Gaussian blur."""
    if params.radius == 0:
        return image.copy()
    return _premultiplied(image, lambda im: im.filter(ImageFilter.GaussianBlur(params.radius)))


def sharpen(image: Image.Image, params: SharpenParams) -> Image.Image:
    """Unsharp mask."""
    mask = ImageFilter.UnsharpMask(params.radius, round(params.amount * 100), threshold=0)
    return _on_colour(image, lambda rgb: rgb.filter(mask))


def brightness(image: Image.Image, params: FactorParams) -> Image.Image:
    """Scale brightness: 0 is black, 1 the original."""
    return _on_colour(image, lambda rgb: ImageEnhance.Brightness(rgb).enhance(params.factor))


def contrast(image: Image.Image, params: FactorParams) -> Image.Image:
    """Scale contrast about the mean grey: 0 is flat grey, 1 the original."""
    return _on_colour(image, lambda rgb: ImageEnhance.Contrast(rgb).enhance(params.factor))


def saturation(image: Image.Image, params: FactorParams) -> Image.Image:
    """Scale colourfulness: 0 is greyscale, 1 the original."""
    return _on_colour(image, lambda rgb: ImageEnhance.Color(rgb).enhance(params.factor))


def hue_shift(image: Image.Image, params: HueShiftParams) -> Image.Image:
    """Rotate hues in HSV space; saturation and value are kept."""
    shift = round(params.degrees / 360 * 256) % 256
    if shift == 0:
        return image.copy()
    table = [(value + shift) % 256 for value in range(256)]

    def rotate_hue(rgb: Image.Image) -> Image.Image:
        hue, sat, val = rgb.convert("HSV").split()
        return Image.merge("HSV", (hue.point(table), sat, val)).convert("RGB")

    return _on_colour(image, rotate_hue)


def posterize(image: Image.Image, params: PosterizeParams) -> Image.Image:
    """At most 2**bits levels per colour channel."""
    return _on_colour(image, lambda rgb: ImageOps.posterize(rgb, params.bits))


def pixelate(image: Image.Image, params: PixelateParams) -> Image.Image:
    """Square blocks of the average colour, aligned to the top-left corner."""
    block = params.block_size
    if block == 1:
        return image.copy()
    small = _premultiplied(image, lambda im: im.reduce(block))
    grown = small.resize((small.width * block, small.height * block), Image.Resampling.NEAREST)
    return grown.crop((0, 0, image.width, image.height))


def resize(image: Image.Image, params: ResizeParams) -> Image.Image:
    """Resize as ``params.mode`` says (see :class:`ResizeParams`)."""
    size = _box(image.size, params)
    if params.width is None or params.height is None or params.mode == "stretch":
        return image.resize(size, _RESAMPLE)
    if params.mode == "fit":
        return ImageOps.contain(image, size, _RESAMPLE)
    if params.mode == "fill":
        return ImageOps.fit(image, size, _RESAMPLE)
    colour = _rgba(params.pad_color)
    return ImageOps.pad(_with_alpha_for(image, colour), size, _RESAMPLE, color=colour)


# Clockwise quarter turns; Pillow names its transposes counter-clockwise.
_QUARTER_TURNS = {
    90: Image.Transpose.ROTATE_270,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}


def rotate(image: Image.Image, params: RotateParams) -> Image.Image:
    """Rotate clockwise; quarter turns with ``expand`` are exact (no resampling)."""
    angle = params.degrees % 360
    if angle == 0:
        return image.copy()
    if angle in _QUARTER_TURNS and (params.expand or angle == 180):
        return image.transpose(_QUARTER_TURNS[int(angle)])
    fill = _rgba(params.fill)
    canvas = _with_alpha_for(image, fill)
    # Pillow turns counter-clockwise for positive angles.
    return canvas.rotate(
        -angle, Image.Resampling.BICUBIC, expand=params.expand, fillcolor=_fill_for(canvas, fill)
    )


def flip(image: Image.Image, params: FrameParams) -> Image.Image:
    """Upside down (top and bottom swapped)."""
    return ImageOps.flip(image)


def mirror(image: Image.Image, params: FrameParams) -> Image.Image:
    """Left and right swapped."""
    return ImageOps.mirror(image)


def crop(image: Image.Image, params: CropParams) -> Image.Image:
    """The box of ``params``; a box reaching outside the picture is refused."""
    width = params.width or image.width - params.left
    height = params.height or image.height - params.top
    right, bottom = params.left + width, params.top + height
    if width <= 0 or height <= 0 or right > image.width or bottom > image.height:
        raise MediaError(
            f"the crop box {width}x{height} at ({params.left}, {params.top}) "
            f"does not fit in the {image.width}x{image.height} picture"
        )
    return image.crop((params.left, params.top, right, bottom))


# --- Helpers --------------------------------------------------------------------------


def _on_colour(image: Image.Image, fn: Callable[[Image.Image], Image.Image]) -> Image.Image:
    """Apply ``fn`` to the colour channels; the alpha channel is kept as it was."""
    if image.mode != "RGBA":
        return fn(image if image.mode == "RGB" else image.convert("RGB"))
    result = fn(image.convert("RGB"))
    result.putalpha(image.getchannel("A"))
    return result


def _premultiplied(image: Image.Image, fn: Callable[[Image.Image], Image.Image]) -> Image.Image:
    """Apply ``fn`` to premultiplied colour, so transparent pixels add no colour."""
    if image.mode != "RGBA":
        return fn(image)
    return fn(image.convert("RGBa")).convert("RGBA")


def _box(size: tuple[int, int], params: ResizeParams) -> tuple[int, int]:
    """The target size, a missing side following the aspect ratio."""
    width, height = size
    if params.width is not None and params.height is not None:
        box = (params.width, params.height)
    elif params.width is not None:
        box = (params.width, max(1, round(height * params.width / width)))
    else:
        assert params.height is not None  # ResizeParams refuses neither
        box = (max(1, round(width * params.height / height)), params.height)
    if box[0] * box[1] > MAX_PIXELS:
        raise MediaError(f"resizing to {box[0]}x{box[1]} exceeds the {MAX_PIXELS:,} pixel limit")
    return box


def _rgba(colour: str) -> tuple[int, int, int, int]:
    digits = colour.lstrip("#")
    alpha = int(digits[6:8], 16) if len(digits) == 8 else 255
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16), alpha


def _with_alpha_for(image: Image.Image, colour: tuple[int, int, int, int]) -> Image.Image:
    """``image`` as RGBA when ``colour`` is translucent, so the colour can be honoured."""
    return image.convert("RGBA") if colour[3] < 255 and image.mode != "RGBA" else image


def _fill_for(image: Image.Image, colour: tuple[int, int, int, int]) -> tuple[int, ...]:
    return colour if image.mode == "RGBA" else colour[:3]


# --- Effects --------------------------------------------------------------------------

P = TypeVar("P", bound=FrameParams)


@dataclass(frozen=True, kw_only=True)
class FrameEffect(Generic[P]):
    """A per-frame effect: its name, parameters and pure frame function."""

    name: str
    description: str
    params: type[P]
    frame_fn: Callable[[Image.Image, P], Image.Image]
    version: str = "1"

    def effect(self) -> Effect:
        """The registrable effect, rendering images and videos alike."""
        modules = [media, video, sys.modules[__name__]]
        return Effect(
            name=self.name,
            version=self.version,
            description=self.description,
            render=_FrameRender(self),
            params=self.params,
            accepts=_ACCEPTS,
            inputs=1,
            content_hash=media.source_hash(self.name, self.version, modules),
        )


@dataclass(frozen=True)
class _FrameRender:
    """The render function of a :class:`FrameEffect`."""

    spec: FrameEffect[Any]

    def __call__(
        self, inputs: Sequence[Path], workdir: Path, params: Any, progress: Progress
    ) -> Path:
        return render_frames(self.spec, inputs[0], workdir, params, progress)


def render_frames(
    spec: FrameEffect[P], source: Path, workdir: Path, params: P, progress: Progress
) -> Path:
    """Apply ``spec`` to the image or video ``source``; the output is PNG or MP4."""
    info = probe_input(source, _ACCEPTS)
    if info.kind == "video":
        return map_frames(
            source, workdir, lambda frame: spec.frame_fn(frame, params), params.encoding, progress
        )
    output = save_png(spec.frame_fn(open_image(source), params), workdir)
    progress(100.0)
    return output


def save_png(image: Image.Image, workdir: Path) -> Path:
    """Write ``image`` as ``output.png`` under ``workdir``."""
    target = workdir / IMAGE_OUTPUT_NAME
    image.save(target, format="PNG")
    return target


_SPECS: list[tuple[str, str, type[FrameParams], Callable[[Image.Image, Any], Image.Image]]] = [
    ("grayscale", "Shades of grey.", FrameParams, grayscale),
    ("invert", "The colour negative.", FrameParams, invert),
    ("sepia", "Old-photograph brown tones.", SepiaParams, sepia),
    ("blur", "Gaussian blur of a radius in pixels.", BlurParams, blur),
    ("sharpen", "Unsharp-mask sharpening.", SharpenParams, sharpen),
    ("brightness", "Scale brightness by a factor.", FactorParams, brightness),
    ("contrast", "Scale contrast by a factor.", FactorParams, contrast),
    ("saturation", "Scale colour saturation by a factor.", FactorParams, saturation),
    ("hue_shift", "Rotate hues by degrees.", HueShiftParams, hue_shift),
    ("posterize", "Fewer levels per colour channel.", PosterizeParams, posterize),
    ("pixelate", "Square blocks of average colour.", PixelateParams, pixelate),
    ("resize", "Resize to a box: fit, fill, stretch or pad.", ResizeParams, resize),
    ("rotate", "Rotate clockwise by degrees.", RotateParams, rotate),
    ("flip", "Upside down (vertical flip).", FrameParams, flip),
    ("mirror", "Left-right mirror image (horizontal flip).", FrameParams, mirror),
    ("crop", "Cut out a box.", CropParams, crop),
]


def frame_effects() -> list[FrameEffect[Any]]:
    """Every per-frame effect, in the order they are listed."""
    return [
        FrameEffect(name=name, description=description, params=params, frame_fn=fn)
        for name, description, params, fn in _SPECS
    ]


def image_effects() -> list[Effect]:
    """The per-frame effects as registrable effects (each takes an image or a video)."""
    return [spec.effect() for spec in frame_effects()]
