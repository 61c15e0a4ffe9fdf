"""Per-frame effects that change a picture's shape: resize, rotate, flip, mirror and
crop. Each is a :class:`~l1.effects.render.frames.FrameEffect`; on video, each runs as
the libavfilter chain its :meth:`video_filter` gives, sized to the pixel as Pillow
sizes the still (:mod:`l1.effects.render.geometry`)."""

from __future__ import annotations

import math

from PIL import Image, ImageOps

from l1.effects.params import CropParams, FrameParams, ResizeParams, RotateParams
from l1.effects.render.frames import FrameEffect
from l1.effects.render.geometry import (
    QUARTER_TURNS,
    TRANSPOSES,
    contained_size,
    crop_size,
    fill_crop,
    pad_offset,
    refuse_past_limit,
    resize_box,
    turned_size,
)

__all__ = ["Crop", "Flip", "Mirror", "Resize", "Rotate"]

_RESAMPLE = Image.Resampling.LANCZOS


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

    def video_filter(self, params: ResizeParams, size: tuple[int, int]) -> str | None:
        box = resize_box(size, params)
        if params.width is None or params.height is None or params.mode == "stretch":
            return _lanczos(box)
        if params.mode == "fit":
            return _lanczos(contained_size(size, box))
        if params.mode == "fill":
            part = fill_crop(size, box)
            crop = f"crop={part.width}:{part.height}:{part.left}:{part.top}:exact=1"
            return f"{crop},{_lanczos(box)}"
        inner = contained_size(size, box)
        left, top = pad_offset(inner, box)
        # Video has no alpha: a translucent pad colour is laid on as opaque.
        colour = _hex_rgb(params.pad_color)
        return f"{_lanczos(inner)},{_pad_exactly(box, (left, top), colour)}"


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
        width, height = turned_size(size, angle) if params.expand else size
        if params.expand:
            refuse_past_limit((width, height))
        # libavfilter turns clockwise for positive angles, bilinear (Pillow: bicubic).
        radians = math.radians(angle)
        colour = _hex_rgb(params.fill)
        return f"rotate=a={radians:.9g}:ow={width}:oh={height}:c={colour}"


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


def _lanczos(size: tuple[int, int]) -> str:
    return f"scale={size[0]}:{size[1]}:flags=lanczos"


def _pad_exactly(box: tuple[int, int], corner: tuple[int, int], colour: str) -> str:
    """``pad`` to ``box`` with the picture at ``corner``, to the pixel. In 4:2:0, pad
    rounds its canvas's sides and the picture's offsets down to even: odd ones are
    padded one further and the extra row or column cut off."""
    left_extra, top_extra = corner[0] % 2, corner[1] % 2
    width, height = box[0] + left_extra, box[1] + top_extra
    canvas = f"{width + width % 2}:{height + height % 2}"
    pad = f"pad={canvas}:{corner[0] + left_extra}:{corner[1] + top_extra}:color={colour}"
    if (width + width % 2, height + height % 2) == box:
        return pad
    return f"{pad},crop={box[0]}:{box[1]}:{left_extra}:{top_extra}:exact=1"


def _hex_rgb(colour: str) -> str:
    """``#RRGGBB[AA]`` as libavfilter's ``0xRRGGBB`` (video frames carry no alpha)."""
    return "0x" + colour.lstrip("#")[:6]


def _rgba(colour: str) -> tuple[int, int, int, int]:
    digits = colour.lstrip("#")
    alpha = int(digits[6:8], 16) if len(digits) == 8 else 255
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16), alpha


def _with_alpha_for(image: Image.Image, colour: tuple[int, int, int, int]) -> Image.Image:
    """``image`` as RGBA when ``colour`` is translucent, so the colour can be honoured."""
    return image.convert("RGBA") if colour[3] < 255 and image.mode != "RGBA" else image


def _fill_for(image: Image.Image, colour: tuple[int, int, int, int]) -> tuple[int, ...]:
    return colour if image.mode == "RGBA" else colour[:3]
