"""Per-frame effects: each is a :class:`FrameEffect` whose :meth:`~FrameEffect.picture`
changes one Pillow picture; it renders an image, or a video frame by frame.

An effect that libavfilter can do as well says how in :meth:`~FrameEffect.video_filter`;
its videos are then filtered in YUV (:mod:`l1.effects.media.filters`), several times
faster than turning every frame into an RGB picture and back, with the same meaning.

Pictures come in as RGB or RGBA; the alpha channel is kept where it makes sense, and
filters that mix neighbouring pixels work on premultiplied colour, so transparent
pixels do not bleed into their neighbours. Image outputs are PNG (lossless); video
outputs are as :mod:`l1.effects.media.output` writes them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from l1.effects.media.filters import filter_frames
from l1.effects.media.pipeline import map_frames
from l1.effects.media.probe import check_frame, open_image, probe_input
from l1.effects.params import (
    BlurParams,
    CropParams,
    FactorParams,
    FrameParams,
    HueShiftParams,
    PixelateParams,
    PosterizeParams,
    ResizeParams,
    RotateParams,
    SepiaParams,
    SharpenParams,
)
from l1.effects.registry import RenderContext
from l1.effects.render.geometry import (
    QUARTER_TURNS,
    TRANSPOSES,
    crop_size,
    refuse_past_limit,
    resize_box,
    turned_size,
)

__all__ = [
    "IMAGE_OUTPUT_NAME",
    "Blur",
    "Brightness",
    "Contrast",
    "Crop",
    "Flip",
    "FrameEffect",
    "Grayscale",
    "HueShift",
    "Invert",
    "Mirror",
    "Pixelate",
    "Posterize",
    "Resize",
    "Rotate",
    "Saturation",
    "Sepia",
    "Sharpen",
    "save_png",
]

IMAGE_OUTPUT_NAME = "output.png"
_ACCEPTS = frozenset({"image", "video"})
_RESAMPLE = Image.Resampling.LANCZOS

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
        """Render the image or video ``inputs[0]``; the output is PNG or MP4."""
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
        output = save_png(picture, workdir)
        context.progress(100.0)
        return output


def save_png(image: Image.Image, workdir: Path) -> Path:
    """Write ``image`` as ``output.png`` under ``workdir``."""
    target = workdir / IMAGE_OUTPUT_NAME
    image.save(target, format="PNG")
    return target


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


class Brightness(FrameEffect[FactorParams]):
    """Scale brightness: 0 is black, 1 the original."""

    def picture(self, image: Image.Image, params: FactorParams) -> Image.Image:
        return _on_colour(image, lambda rgb: ImageEnhance.Brightness(rgb).enhance(params.factor))


class Contrast(FrameEffect[FactorParams]):
    """Scale contrast about the mean grey: 0 is flat grey, 1 the original."""

    def picture(self, image: Image.Image, params: FactorParams) -> Image.Image:
        return _on_colour(image, lambda rgb: ImageEnhance.Contrast(rgb).enhance(params.factor))


class Saturation(FrameEffect[FactorParams]):
    """Scale colourfulness: 0 is greyscale, 1 the original."""

    def picture(self, image: Image.Image, params: FactorParams) -> Image.Image:
        return _on_colour(image, lambda rgb: ImageEnhance.Color(rgb).enhance(params.factor))

    def video_filter(self, params: FactorParams, size: tuple[int, int]) -> str | None:
        # Pillow mixes each pixel with its own grey; in YUV that scales the chroma.
        return f"hue=s={params.factor:g}"


class HueShift(FrameEffect[HueShiftParams]):
    """Rotate hues in HSV space; saturation and value are kept."""

    def picture(self, image: Image.Image, params: HueShiftParams) -> Image.Image:
        shift = round(params.degrees / 360 * 256) % 256
        if shift == 0:
            return image.copy()
        table = [(value + shift) % 256 for value in range(256)]

        def rotate_hue(rgb: Image.Image) -> Image.Image:
            hue, sat, val = rgb.convert("HSV").split()
            return Image.merge("HSV", (hue.point(table), sat, val)).convert("RGB")

        return _on_colour(image, rotate_hue)


class Posterize(FrameEffect[PosterizeParams]):
    """At most 2**bits levels per colour channel."""

    def picture(self, image: Image.Image, params: PosterizeParams) -> Image.Image:
        return _on_colour(image, lambda rgb: ImageOps.posterize(rgb, params.bits))


class Pixelate(FrameEffect[PixelateParams]):
    """Square blocks of the average colour, aligned to the top-left corner."""

    def picture(self, image: Image.Image, params: PixelateParams) -> Image.Image:
        block = params.block_size
        if block == 1:
            return image.copy()
        small = _premultiplied(image, lambda im: im.reduce(block))
        grown = small.resize((small.width * block, small.height * block), Image.Resampling.NEAREST)
        return grown.crop((0, 0, image.width, image.height))


class Resize(FrameEffect[ResizeParams]):
    """Resize as ``params.mode`` says (see :class:`~l1.effects.params.ResizeParams`)."""

    def picture(self, image: Image.Image, params: ResizeParams) -> Image.Image:
        size = resize_box(image.size, params)
        if params.width is None or params.height is None or params.mode == "stretch":
            return image.resize(size, _RESAMPLE)
        if params.mode == "fit":
            return ImageOps.contain(image, size, _RESAMPLE)
        if params.mode == "fill":
            return ImageOps.fit(image, size, _RESAMPLE)
        colour = _rgba(params.pad_color)
        return ImageOps.pad(_with_alpha_for(image, colour), size, _RESAMPLE, color=colour)


class Rotate(FrameEffect[RotateParams]):
    """Rotate clockwise; quarter turns with ``expand`` are exact (no resampling)."""

    def picture(self, image: Image.Image, params: RotateParams) -> Image.Image:
        angle = params.degrees % 360
        if angle == 0:
            return image.copy()
        if angle in QUARTER_TURNS and (params.expand or angle == 180):
            return image.transpose(QUARTER_TURNS[int(angle)])
        if params.expand:
            refuse_past_limit(turned_size(image.size, angle))
        fill = _rgba(params.fill)
        canvas = _with_alpha_for(image, fill)
        # Pillow turns counter-clockwise for positive angles.
        return canvas.rotate(
            -angle,
            Image.Resampling.BICUBIC,
            expand=params.expand,
            fillcolor=_fill_for(canvas, fill),
        )

    def video_filter(self, params: RotateParams, size: tuple[int, int]) -> str | None:
        angle = params.degrees % 360
        if angle == 0:
            return "null"
        if angle in TRANSPOSES and (params.expand or angle == 180):
            return TRANSPOSES[int(angle)]
        return None  # any other turn resamples: Pillow's bicubic rotation


class Flip(FrameEffect[FrameParams]):
    """Upside down (top and bottom swapped)."""

    def picture(self, image: Image.Image, params: FrameParams) -> Image.Image:
        return ImageOps.flip(image)

    def video_filter(self, params: FrameParams, size: tuple[int, int]) -> str | None:
        return "vflip"


class Mirror(FrameEffect[FrameParams]):
    """Left and right swapped."""

    def picture(self, image: Image.Image, params: FrameParams) -> Image.Image:
        return ImageOps.mirror(image)

    def video_filter(self, params: FrameParams, size: tuple[int, int]) -> str | None:
        return "hflip"


class Crop(FrameEffect[CropParams]):
    """The box of ``params``; a box reaching outside the picture is refused."""

    def picture(self, image: Image.Image, params: CropParams) -> Image.Image:
        width, height = crop_size(image.size, params)
        return image.crop((params.left, params.top, params.left + width, params.top + height))

    def video_filter(self, params: CropParams, size: tuple[int, int]) -> str | None:
        width, height = crop_size(size, params)
        # exact: an odd offset is kept, not rounded to the chroma grid.
        return f"crop={width}:{height}:{params.left}:{params.top}:exact=1"


# --- Helpers --------------------------------------------------------------------------


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


def _rgba(colour: str) -> tuple[int, int, int, int]:
    digits = colour.lstrip("#")
    alpha = int(digits[6:8], 16) if len(digits) == 8 else 255
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16), alpha


def _with_alpha_for(image: Image.Image, colour: tuple[int, int, int, int]) -> Image.Image:
    """``image`` as RGBA when ``colour`` is translucent, so the colour can be honoured."""
    return image.convert("RGBA") if colour[3] < 255 and image.mode != "RGBA" else image


def _fill_for(image: Image.Image, colour: tuple[int, int, int, int]) -> tuple[int, ...]:
    return colour if image.mode == "RGBA" else colour[:3]
