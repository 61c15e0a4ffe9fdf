"""Writing a still picture in the format asked for (PNG unless told otherwise)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from PIL import Image

from l1.effects.formats import STILL
from l1.effects.params import VideoEncoding
from l1.effects.registry import MediaError

__all__ = ["save_still"]

_SUFFIX: Final = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "gif": ".gif"}
_QUALITY: Final = 95  # JPEG and lossy WebP: near the original; crf 0 makes WebP lossless


def save_still(image: Image.Image, workdir: Path, encoding: VideoEncoding) -> Path:
    """Write ``image`` under ``workdir`` as ``encoding.format`` says: PNG (lossless, the
    default), JPEG (alpha dropped), WebP or GIF. Refuses a video format."""
    name = encoding.format or "png"
    if name not in STILL:
        raise MediaError(
            f"{name} holds video, but the input is a still image: ask for png, jpeg, webp or gif"
        )
    target = workdir / f"output{_SUFFIX[name]}"
    if name == "jpeg":
        image.convert("RGB").save(target, format="JPEG", quality=_QUALITY)
    elif name == "webp":
        image.save(target, format="WEBP", quality=_QUALITY, lossless=encoding.crf == 0)
    else:
        image.save(target, format=name.upper())
    return target
