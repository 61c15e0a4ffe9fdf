"""The geometry of the per-frame effects: sizes of crops, resizes and turns, refused
past the pixel limit, and quarter turns as Pillow and libavfilter name them.

The sizes mirror Pillow's own arithmetic (``ImageOps.contain``, ``fit``, ``pad`` and
``Image.rotate``), so a video filtered by libavfilter comes out the size the picture
path gives."""

from __future__ import annotations

import math
from typing import NamedTuple

from PIL import Image

from l1.effects.limits import MAX_PIXELS
from l1.effects.params import CropParams, ResizeParams
from l1.effects.registry import MediaError

__all__ = [
    "QUARTER_TURNS",
    "TRANSPOSES",
    "Box",
    "contained_size",
    "crop_size",
    "fill_crop",
    "pad_offset",
    "refuse_past_limit",
    "resize_box",
    "turned_size",
]

# Clockwise quarter turns; Pillow names its transposes counter-clockwise.
QUARTER_TURNS = {
    90: Image.Transpose.ROTATE_270,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}

# Clockwise quarter turns as libavfilter's transposes.
TRANSPOSES = {90: "transpose=clock", 180: "hflip,vflip", 270: "transpose=cclock"}


def crop_size(size: tuple[int, int], params: CropParams) -> tuple[int, int]:
    """The crop box's width and height in a ``size`` picture; refused unless it fits."""
    width = params.width or size[0] - params.left
    height = params.height or size[1] - params.top
    if width <= 0 or height <= 0 or params.left + width > size[0] or params.top + height > size[1]:
        raise MediaError(
            f"the crop box {width}x{height} at ({params.left}, {params.top}) "
            f"does not fit in the {size[0]}x{size[1]} picture"
        )
    return width, height


def resize_box(size: tuple[int, int], params: ResizeParams) -> tuple[int, int]:
    """The target size, a missing side following the aspect ratio."""
    width, height = size
    if params.width is not None and params.height is not None:
        box = (params.width, params.height)
    elif params.width is not None:
        box = (params.width, max(1, round(height * params.width / width)))
    else:
        assert params.height is not None  # ResizeParams refuses neither
        box = (max(1, round(width * params.height / height)), params.height)
    refuse_past_limit(box)
    return box


def turned_size(size: tuple[int, int], degrees: float) -> tuple[int, int]:
    """The canvas that holds a ``size`` picture turned clockwise by ``degrees``, as
    Pillow's ``rotate(expand=True)`` sizes it: the turned corners about the centre, each
    side from the floor of the lowest to the ceiling of the highest."""
    width, height = size
    theta = math.radians(degrees)
    # Rounded as Pillow rounds its matrix, so that 90 degrees gives exact zeros.
    cos, sin = round(math.cos(theta), 15), round(math.sin(theta), 15)
    centre_x, centre_y = width / 2, height / 2
    xs, ys = [], []
    for x, y in ((0, 0), (width, 0), (width, height), (0, height)):
        xs.append(cos * (x - centre_x) + sin * (y - centre_y) + centre_x)
        ys.append(-sin * (x - centre_x) + cos * (y - centre_y) + centre_y)
    return (
        math.ceil(max(xs)) - math.floor(min(xs)),
        math.ceil(max(ys)) - math.floor(min(ys)),
    )


class Box(NamedTuple):
    """A rectangle of whole pixels: its size and its top-left corner."""

    width: int
    height: int
    left: int
    top: int


def contained_size(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """The largest size of ``size``'s aspect ratio inside ``box`` (``ImageOps.contain``)."""
    width, height = size
    ratio, box_ratio = width / height, box[0] / box[1]
    if ratio > box_ratio:
        return box[0], max(1, round(height / width * box[0]))
    if ratio < box_ratio:
        return max(1, round(width / height * box[1])), box[1]
    return box


def fill_crop(size: tuple[int, int], box: tuple[int, int]) -> Box:
    """The centred part of a ``size`` picture with ``box``'s aspect ratio, which
    ``ImageOps.fit`` scales to ``box``; rounded to whole pixels (Pillow keeps fractions)."""
    width, height = size
    ratio, box_ratio = width / height, box[0] / box[1]
    if ratio > box_ratio:
        crop_width = min(width, max(1, round(box_ratio * height)))
        return Box(crop_width, height, round((width - crop_width) / 2), 0)
    if ratio < box_ratio:
        crop_height = min(height, max(1, round(width / box_ratio)))
        return Box(width, crop_height, 0, round((height - crop_height) / 2))
    return Box(width, height, 0, 0)


def pad_offset(inner: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """Where ``ImageOps.pad`` places an ``inner`` picture, centred in ``box``."""
    if inner[0] != box[0]:
        return round((box[0] - inner[0]) / 2), 0
    return 0, round((box[1] - inner[1]) / 2)


def refuse_past_limit(box: tuple[int, int]) -> None:
    """Raise :class:`MediaError` when a ``box`` output would be over the pixel limit."""
    if box[0] * box[1] > MAX_PIXELS:
        raise MediaError(f"the output would be {box[0]}x{box[1]}, over {MAX_PIXELS:,} pixels")
