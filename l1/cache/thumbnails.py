"""Small pictures of cached items: an image scaled down, or a video's first frame.

:func:`make_thumbnail` is CPU work that decodes untrusted media, so callers run it in
a process pool (a crash in a codec takes the pool's process, never the caller). PIL and
PyAV are imported inside it, so that importing this module costs nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["THUMBNAIL_SIZE", "make_thumbnail"]

THUMBNAIL_SIZE = 320
# Larger pictures are refused rather than decoded (a decompression bomb).
MAX_PIXELS = 100_000_000


def make_thumbnail(source: str, target: str, kind: str, size: int = THUMBNAIL_SIZE) -> bool:
    """Write a JPEG of at most ``size`` pixels a side to ``target`` from the ``kind``
    (``image`` or ``video``) file at ``source``; False when it cannot be decoded."""
    from PIL import Image as PIL

    PIL.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        picture = _first_frame(source) if kind == "video" else _image(source)
    except Exception:  # anything a hostile or broken file can make a decoder say
        return False
    if picture is None:
        return False
    picture.thumbnail((size, size))
    if picture.mode not in ("RGB", "L"):
        picture = picture.convert("RGB")
    partial = Path(f"{target}.{os.getpid()}.part")
    picture.save(partial, format="JPEG", quality=80)
    partial.replace(target)  # whole or not at all: a reader never sees half a picture
    return True


def _image(source: str) -> Image:
    from PIL import Image as PIL

    picture = PIL.open(source)
    picture.draft("RGB", (THUMBNAIL_SIZE * 2, THUMBNAIL_SIZE * 2))  # JPEG: decode smaller
    picture.load()
    return picture


def _first_frame(source: str) -> Image | None:
    import av

    with av.open(source) as container:
        if not container.streams.video:
            return None
        for frame in container.decode(video=0):
            return frame.to_image()
    return None
