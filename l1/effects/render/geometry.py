"""The geometry of the per-frame effects: sizes of crops, resizes and turns, refused
past the pixel limit, and quarter turns as Pillow and libavfilter name them."""

from __future__ import annotations

import math

from PIL import Image

from l1.effects.limits import MAX_PIXELS
from l1.effects.params import CropParams, ResizeParams
from l1.effects.registry import MediaError

__all__ = [
    "QUARTER_TURNS",
    "TRANSPOSES",
    "crop_size",
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
    """The canvas that holds a ``size`` picture turned by ``degrees``."""
    width, height = size
    cos, sin = abs(math.cos(math.radians(degrees))), abs(math.sin(math.radians(degrees)))
    return math.ceil(width * cos + height * sin), math.ceil(width * sin + height * cos)


def refuse_past_limit(box: tuple[int, int]) -> None:
    """Raise :class:`MediaError` when a ``box`` output would be over the pixel limit."""
    if box[0] * box[1] > MAX_PIXELS:
        raise MediaError(f"the output would be {box[0]}x{box[1]}, over {MAX_PIXELS:,} pixels")
