"""Animated GIF and WebP: written with Pillow, and animated WebP read with it.

FFmpeg decodes GIF but not animated WebP, so an animated WebP is first decoded with
Pillow into a lossless FFV1 stream with each frame's own timestamp; from there it goes
through the same frame pipeline as any video. Outputs in either format are written by
Pillow, which keeps each frame's duration and the loop count.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import IO, Final

import av
from PIL import Image, ImageSequence

from l1.effects.registry import MediaError

__all__ = ["DEFAULT_FRAME_MS", "MS", "AnimationOut", "decoded_webp"]

MS: Final = Fraction(1, 1000)
"""The clock of a decoded animated WebP: durations are whole milliseconds."""

# GIF counts time in hundredths of a second; browsers show shorter frames at 100 ms.
_GIF_TICK_MS: Final = 10
_WEBP_QUALITY: Final = 90
DEFAULT_FRAME_MS: Final = 100  # what browsers show a frame without a duration for


@contextmanager
def decoded_webp(path: Path) -> Iterator[IO[bytes]]:
    """The frames of the animated WebP at ``path`` as a lossless FFV1 stream in an
    anonymous Matroska file, each frame at its own time (milliseconds)."""
    with tempfile.TemporaryFile(suffix=".mkv") as scratch:
        with Image.open(path) as image, av.open(scratch, "w", format="matroska") as output:
            stream = output.add_stream("ffv1", rate=1000)
            stream.width, stream.height = image.size
            stream.pix_fmt = "bgra"
            stream.codec_context.time_base = MS
            at = 0
            for frame in ImageSequence.Iterator(image):
                picture = av.VideoFrame.from_image(frame.convert("RGBA")).reformat(format="bgra")
                picture.pts, picture.time_base = at, MS
                duration = max(1, int(frame.info.get("duration") or DEFAULT_FRAME_MS))
                picture.duration, at = duration, at + duration
                for packet in stream.encode(picture):  # intra-only: one packet per frame
                    packet.duration = duration
                    output.mux(packet)
            output.mux(stream.encode(None))
        scratch.seek(0)
        yield scratch


class AnimationOut:
    """An animated GIF or WebP being written: frames are kept, as Pillow writes the
    file at the end, with each frame's duration and the loop count.

    Frames are held in memory until :meth:`finish` (Pillow writes an animation whole),
    so long clips are better written as video; the render's memory limit applies.
    """

    pix_fmt: Final = "rgba"
    even: Final = False  # any size is fine: no chroma subsampling

    def __init__(
        self, path: Path, format: str, fps: Fraction, loop: int | None, lossless: bool
    ) -> None:
        self.path = path
        self.step = 1 / fps
        self.count = 0
        self._format = format
        self._loop = loop
        self._lossless = lossless
        self._frames: list[Image.Image] = []
        self._times: list[float] = []  # seconds, each frame's start
        self._last_duration: float | None = None  # the last frame's, when it says

    def tag_like(self, source: object) -> None:
        """Colour tags do not apply: pictures are stored as RGB."""

    def write(self, picture: av.VideoFrame | Image.Image, at: float | None = None) -> None:
        """Add the next frame, shown from ``at`` seconds (by default one frame step after
        the previous one)."""
        self._last_duration = None
        if isinstance(picture, av.VideoFrame):
            if picture.duration and picture.time_base:
                self._last_duration = float(picture.duration * picture.time_base)
            image = picture.to_image()
        else:
            image = picture
        start = self.count * float(self.step) if at is None else at
        self._frames.append(image if image.mode in ("RGB", "RGBA") else image.convert("RGBA"))
        self._times.append(start)
        self.count += 1

    def finish(self) -> None:
        """Write the file."""
        if not self._frames:
            raise MediaError("the animation holds no frames")
        durations = self._durations()
        first, rest = self._frames[0], self._frames[1:]
        options: dict[str, object] = {"save_all": True, "append_images": rest}
        if self._loop is not None:  # None: shown once (Pillow then writes no loop count)
            options["loop"] = self._loop
        if self._format == "webp":
            options |= {"lossless": self._lossless, "quality": _WEBP_QUALITY}
        else:
            options |= {"disposal": 2, "optimize": False}
        first.save(self.path, format=self._format.upper(), duration=durations, **options)

    def _durations(self) -> list[int]:
        """Milliseconds per frame: to the next frame's start; the last as it came, or as
        long as the one before it."""
        times = self._times
        last = self._last_duration
        if last is None:
            last = times[-1] - times[-2] if len(times) > 1 else float(self.step)
        ends = [*times[1:], times[-1] + last]
        durations = [
            max(1, round((end - start) * 1000))
            for start, end in zip(self._times, ends, strict=True)
        ]
        if self._format == "gif":
            durations = [max(1, round(d / _GIF_TICK_MS)) * _GIF_TICK_MS for d in durations]
        return durations
