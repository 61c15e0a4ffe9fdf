"""Per-frame effects: each is a :class:`FrameEffect` whose :meth:`~FrameEffect.picture`
changes one Pillow picture; it renders an image, or a video frame by frame.

An effect that libavfilter can do as well says how in :meth:`~FrameEffect.video_filter`;
its videos are then filtered in YUV (:mod:`l1.effects.media.filters`), several times
faster than turning every frame into an RGB picture and back, with the same meaning.

Pictures come in as RGB or RGBA; the alpha channel is kept where it makes sense, and
filters that mix neighbouring pixels work on premultiplied colour, so transparent
pixels do not bleed into their neighbours. Still outputs are PNG unless
``encoding.format`` says otherwise (:mod:`l1.effects.media.stills`); animations and
videos are written as :mod:`l1.effects.formats` rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from l1.effects.media.filters import filter_frames
from l1.effects.media.pipeline import map_frames
from l1.effects.media.probe import check_frame, open_image, probe_input
from l1.effects.media.stills import save_still
from l1.effects.params import (
    BlurParams,
    FactorParams,
    FrameParams,
    HueShiftParams,
    PixelateParams,
    PosterizeParams,
    SepiaParams,
    SharpenParams,
)
from l1.effects.registry import RenderContext

__all__ = [
    "Blur",
    "Brightness",
    "Contrast",
    "FrameEffect",
    "Grayscale",
    "HueShift",
    "Invert",
    "Pixelate",
    "Posterize",
    "Saturation",
    "Sepia",
    "Sharpen",
]

_ACCEPTS = frozenset({"image", "video"})

P = TypeVar("P", bound=FrameParams)


class FrameEffect(Generic[P]):
    """An effect that changes each picture on its own: the image, or every frame."""

    def picture(self, image: Image.Image, params: P) -> Image.Image:
        """The changed picture."""
        raise NotImplementedError

    def video_filter(self, params: P, size: tuple[int, int]) -> str | None:
        """The libavfilter chain that does to a ``size`` video frame what
        :meth:`picture` does to a picture (``name=options`` steps joined by commas), or
        None when libavfilter has no match and frames go through :meth:`picture`."""
        return None

    def __call__(
        self, inputs: Sequence[Path], workdir: Path, params: P, context: RenderContext
    ) -> Path:
        """Render the image, animation or video ``inputs[0]``, written as
        ``params.encoding`` and the format rules say."""
        source = inputs[0]
        info = probe_input(source, _ACCEPTS, context.limits)
        if info.kind == "video":
            description = self.video_filter(params, (info.width or 0, info.height or 0))
            if description is not None:
                return filter_frames(source, workdir, description, params.encoding, context)
            change = self.picture
            return map_frames(
                source, workdir, lambda frame: change(frame, params), params.encoding, context
            )
        picture = self.picture(open_image(source, context.limits), params)
        check_frame(picture.width, picture.height, context.limits, kind="output")
        output = save_still(picture, workdir, params.encoding)
        context.progress(100.0)
        return output


# --- The effects ----------------------------------------------------------------------


class Grayscale(FrameEffect[FrameParams]):
    """Luma (ITU-R 601) in all three channels."""

    def picture(self, image: Image.Image, params: FrameParams) -> Image.Image:
        return _on_colour(image, lambda rgb: rgb.convert("L").convert("RGB"))

    def video_filter(self, params: FrameParams, size: tuple[int, int]) -> str | None:
        # Luma is already ITU-R 601 Y; neutral chroma leaves exactly that.
        return "hue=s=0"


class Invert(FrameEffect[FrameParams]):
    """The negative; applying it twice gives the original back."""

    def picture(self, image: Image.Image, params: FrameParams) -> Image.Image:
        return _on_colour(image, ImageOps.invert)

    def video_filter(self, params: FrameParams, size: tuple[int, int]) -> str | None:
        # In limited-range YUV, negating each plane within its range is RGB's 255 - v.
        return "negate"


_SEPIA = (
    (0.393, 0.769, 0.189),
    (0.349, 0.686, 0.168),
    (0.272, 0.534, 0.131),
)


class Sepia(FrameEffect[SepiaParams]):
    """The classic sepia matrix, blended with the original by ``strength``."""

    def picture(self, image: Image.Image, params: SepiaParams) -> Image.Image:
        matrix = _sepia_matrix(params.strength)
        # Pillow applies (and clips) a colour matrix in C, far quicker than numpy on video.
        return _on_colour(image, lambda rgb: rgb.convert("RGB", matrix))

    def video_filter(self, params: SepiaParams, size: tuple[int, int]) -> str | None:
        # The same matrix, row by row with the alpha column: rr:rg:rb:ra:gr:...:ba.
        return "colorchannelmixer=" + ":".join(f"{v:.6g}" for v in _sepia_matrix(params.strength))


class Blur(FrameEffect[BlurParams]):
    """Gaussian blur; ``radius`` is the standard deviation in pixels."""

    def picture(self, image: Image.Image, params: BlurParams) -> Image.Image:
        if params.radius == 0:
            return image.copy()
        blur = ImageFilter.GaussianBlur(params.radius)
        return _premultiplied(image, lambda im: im.filter(blur))

    def video_filter(self, params: BlurParams, size: tuple[int, int]) -> str | None:
        if params.radius == 0:
            return "null"
        # yuv420p chroma has half the resolution, so half the radius in its own pixels
        # blurs colour as far across the picture as luma.
        luma, chroma = params.radius, params.radius / 2
        return f"gblur=sigma={luma:g}:planes=1,gblur=sigma={chroma:g}:planes=6"


class Sharpen(FrameEffect[SharpenParams]):
    """Unsharp mask."""

    def picture(self, image: Image.Image, params: SharpenParams) -> Image.Image:
        mask = ImageFilter.UnsharpMask(params.radius, round(params.amount * 100), threshold=0)
        return _on_colour(image, lambda rgb: rgb.filter(mask))

    def video_filter(self, params: SharpenParams, size: tuple[int, int]) -> str | None:
        if params.amount > _UNSHARP_MAX_AMOUNT or params.radius > _UNSHARP_MAX_RADIUS:
            return None  # past what libavfilter's unsharp reaches: Pillow's mask
        if params.amount == 0:
            return "null"
        # The same mask on Y, Cb and Cr is the mask on R, G and B (they are linear in
        # each other); chroma has half the resolution, so half the radius.
        luma, chroma = _unsharp_matrix(params.radius), _unsharp_matrix(params.radius / 2)
        return (
            f"unsharp=lx={luma}:ly={luma}:la={params.amount:g}"
            f":cx={chroma}:cy={chroma}:ca={params.amount:g}"
        )


class Brightness(FrameEffect[FactorParams]):
    """Scale brightness: 0 is black, 1 the original."""

    def picture(self, image: Image.Image, params: FactorParams) -> Image.Image:
        return _on_colour(image, lambda rgb: ImageEnhance.Brightness(rgb).enhance(params.factor))

    def video_filter(self, params: FactorParams, size: tuple[int, int]) -> str | None:
        # RGB scaled towards black is Y scaled towards black and Cb, Cr towards neutral.
        return _scale_yuv(params.factor, luma_pivot=_BLACK)


class Contrast(FrameEffect[FactorParams]):
    """Scale contrast about mid grey (128): 0 is flat grey, 1 the original.

    A fixed pivot rather than each picture's mean grey, so a video does not flicker as
    its scenes change."""

    def picture(self, image: Image.Image, params: FactorParams) -> Image.Image:
        table = [_clip(_MID + (value - _MID) * params.factor) for value in range(256)]
        return _on_colour(image, lambda rgb: rgb.point(table * 3))

    def video_filter(self, params: FactorParams, size: tuple[int, int]) -> str | None:
        # RGB about grey 128 is Y about that grey's luma and Cb, Cr about neutral.
        return _scale_yuv(params.factor, luma_pivot=_BLACK + (_WHITE - _BLACK) * _MID / 255)


class Saturation(FrameEffect[FactorParams]):
    """Scale colourfulness: 0 is greyscale, 1 the original."""

    def picture(self, image: Image.Image, params: FactorParams) -> Image.Image:
        return _on_colour(image, lambda rgb: ImageEnhance.Color(rgb).enhance(params.factor))

    def video_filter(self, params: FactorParams, size: tuple[int, int]) -> str | None:
        # Pillow mixes each pixel with its own grey; in YUV that scales the chroma.
        return f"hue=s={params.factor:g}"


class HueShift(FrameEffect[HueShiftParams]):
    """Rotate hues by turning the colour (Cb, Cr) plane of YCbCr; luma is kept.

    libavfilter's ``hue`` turns video the same way, so pictures and videos agree; a
    positive turn takes red towards green, as the HSV colour wheel does."""

    def picture(self, image: Image.Image, params: HueShiftParams) -> Image.Image:
        if params.degrees % 360 == 0:
            return image.copy()
        return _on_colour(image, lambda rgb: _turn_chroma(rgb, params.degrees))

    def video_filter(self, params: HueShiftParams, size: tuple[int, int]) -> str | None:
        if params.degrees % 360 == 0:
            return "null"
        return f"hue=h={params.degrees:g}"


class Posterize(FrameEffect[PosterizeParams]):
    """At most 2**bits levels per colour channel."""

    def picture(self, image: Image.Image, params: PosterizeParams) -> Image.Image:
        return _on_colour(image, lambda rgb: ImageOps.posterize(rgb, params.bits))

    def video_filter(self, params: PosterizeParams, size: tuple[int, int]) -> str | None:
        if params.bits == 8:
            return "null"
        # Levels are an RGB meaning: the frames go to planar RGB (the colour tags say
        # how), and each channel keeps its top bits, as ImageOps.posterize does.
        step = 1 << (8 - params.bits)
        keep = f"floor(val/{step})*{step}"
        return f"format=gbrp,lutrgb=r={keep}:g={keep}:b={keep}"


class Pixelate(FrameEffect[PixelateParams]):
    """Square blocks of the average colour, aligned to the top-left corner."""

    def picture(self, image: Image.Image, params: PixelateParams) -> Image.Image:
        block = params.block_size
        if block == 1:
            return image.copy()
        small = _premultiplied(image, lambda im: im.reduce(block))
        grown = small.resize((small.width * block, small.height * block), Image.Resampling.NEAREST)
        return grown.crop((0, 0, image.width, image.height))

    def video_filter(self, params: PixelateParams, size: tuple[int, int]) -> str | None:
        block = params.block_size
        if block == 1:
            return "null"
        width, height = size
        small_width, small_height = -(-width // block), -(-height // block)
        # Average each block, grow every average back to a block, cut to the frame. The
        # small picture keeps a colour per block (4:4:4): at 4:2:0 every colour sample
        # would cover four blocks and smear colour across their edges.
        return (
            f"scale={small_width}:{small_height}:flags=area,format=yuv444p,"
            f"scale={small_width * block}:{small_height * block}:flags=neighbor,"
            f"crop={width}:{height}:0:0:exact=1"
        )


# --- Helpers --------------------------------------------------------------------------

# unsharp's matrices: odd sides from 3, and at most 13 x 13 (its fixed-point sums
# allow 12 steps across both directions). A side of n is a binomial blur of standard
# deviation sqrt(n - 1) / 2, so 13 reaches 1.73 pixels; a radius up to 2.5 takes the
# 13 (a slightly narrower halo), anything wider goes through Pillow.
_UNSHARP_MIN_SIDE, _UNSHARP_MAX_SIDE = 3, 13
_UNSHARP_MAX_RADIUS = 2.5
_UNSHARP_MAX_AMOUNT = 5.0  # unsharp's own limit

# Limited-range 8-bit YUV, which every frame is turned to before a lookup table.
_BLACK, _WHITE, _NEUTRAL = 16, 235, 128
_MID = 128  # mid grey in RGB, the pivot of contrast


def _unsharp_matrix(sigma: float) -> int:
    """The odd unsharp matrix side whose blur has standard deviation ``sigma``."""
    side = 2 * round(2 * sigma * sigma) + 1  # n = 4 sigma^2 + 1, made odd
    return max(_UNSHARP_MIN_SIDE, min(_UNSHARP_MAX_SIDE, side))


def _scale_yuv(factor: float, *, luma_pivot: float) -> str:
    """A chain scaling Y about ``luma_pivot`` and Cb, Cr about neutral by ``factor``:
    RGB scaled by ``factor`` about the grey of that luma, exact since YUV is linear in
    RGB. Frames are made limited-range 8-bit first (full-range ones are converted;
    limited ones pass untouched), so the table's levels mean the same for every
    source; out-of-range results are kept up to 0..255 and clip in RGB as Pillow's do."""
    luma = f"(val-{luma_pivot:.6g})*{factor:g}+{luma_pivot + 0.5:.6g}"  # +0.5: lut truncates
    chroma = f"(val-{_NEUTRAL})*{factor:g}+{_NEUTRAL + 0.5}"
    return f"scale=out_range=tv,format=yuv420p,lutyuv=y={luma}:u={chroma}:v={chroma}"


def _clip(value: float) -> int:
    return max(0, min(255, round(value)))


def _turn_chroma(rgb: Image.Image, degrees: float) -> Image.Image:
    """``rgb`` with its (Cb, Cr) plane turned by ``degrees``, as libavfilter's ``hue``."""
    ycc = np.asarray(rgb.convert("YCbCr"), dtype=np.float32)
    cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    cb, cr = ycc[..., 1] - _NEUTRAL, ycc[..., 2] - _NEUTRAL
    turned = np.empty_like(ycc)
    turned[..., 0] = ycc[..., 0]
    turned[..., 1] = cb * cos - cr * sin + _NEUTRAL
    turned[..., 2] = cb * sin + cr * cos + _NEUTRAL
    planes = np.clip(np.rint(turned), 0, 255).astype(np.uint8)
    return Image.fromarray(planes, "YCbCr").convert("RGB")


def _sepia_matrix(strength: float) -> tuple[float, ...]:
    """The sepia matrix blended with the identity by ``strength``, as 3 rows of 4
    (Pillow's ``convert`` matrix layout)."""
    rows = [
        [(1 - strength) * (row == col) + strength * _SEPIA[row][col] for col in range(3)] + [0.0]
        for row in range(3)
    ]
    return tuple(value for row in rows for value in row)


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
