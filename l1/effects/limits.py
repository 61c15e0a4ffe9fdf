"""What one render may take on: the limits checked before decoding where the container
says, and enforced while decoding where it does not tell the truth."""

from __future__ import annotations

import msgspec

__all__ = ["MAX_FRAMES", "MAX_PIXELS", "MAX_SECONDS", "MediaLimits"]

MAX_PIXELS = 50_000_000
"""The default limit of pixels in one picture or video frame (50 megapixels)."""
MAX_FRAMES = 500_000
"""The default limit of frames in one video (over four hours at 30 fps)."""
MAX_SECONDS = 4 * 3600.0
"""The default limit of a video's or a sound's duration (four hours)."""


class MediaLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Limits on the media a render reads and writes (``L1_MAX_PIXELS``,
    ``L1_MAX_FRAMES``, ``L1_MAX_SECONDS``)."""

    max_pixels: int = MAX_PIXELS
    max_frames: int = MAX_FRAMES
    max_seconds: float = MAX_SECONDS

    def frame_refusal(self, width: int, height: int, kind: str) -> str | None:
        """Why a ``width`` x ``height`` picture (a ``kind``) is refused, or None when its
        pixels are within the limit."""
        if width * height <= self.max_pixels:
            return None
        return (
            f"refused: the {kind} is {width}x{height} ({width * height / 1e6:.3g} megapixels); "
            f"the limit is {self.max_pixels / 1e6:.3g} megapixels"
        )
