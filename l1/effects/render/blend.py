"""``blend``: lay one picture or clip over another.

The second input is composited over the first with a separable blend mode (the W3C
Compositing and Blending formulas) at an ``opacity``; the second input's own
transparency, if any, thins it further. Two images give a still the size of the
first (PNG unless ``encoding.format`` says otherwise); a video or animation first gives
a clip of the first clip's length, size and frame rate in the first clip's format (see
:mod:`l1.effects.formats`), with its audio carried over. A second video shorter than
the first is looped or its last frame held (``shorter``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, NamedTuple

import av
import numpy as np
from PIL import Image

from l1.effects.limits import MediaLimits
from l1.effects.media.output import Meter, finish, open_output
from l1.effects.media.pipeline import frames
from l1.effects.media.probe import MediaError, MediaInfo, open_image, probe_input
from l1.effects.media.source import open_source
from l1.effects.media.stills import save_still
from l1.effects.params import BlendMode, BlendParams
from l1.effects.registry import RenderContext

__all__ = ["BLEND_MODES", "blend", "blend_pixels"]

_ACCEPTS = frozenset({"image", "video"})
_EPSILON = 1e-6  # seconds: float clocks may land a hair before a frame's time


# --- Blend maths ----------------------------------------------------------------------

_Mix = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _overlay(base: np.ndarray, top: np.ndarray) -> np.ndarray:
    return np.where(base <= 0.5, 2 * base * top, 1 - 2 * (1 - base) * (1 - top))


BLEND_MODES: dict[str, _Mix] = {
    "normal": lambda base, top: top,
    "multiply": lambda base, top: base * top,
    "screen": lambda base, top: base + top - base * top,
    "overlay": _overlay,
    "add": lambda base, top: np.minimum(base + top, 1.0),
    "difference": lambda base, top: np.abs(base - top),
    "lighten": np.maximum,
    "darken": np.minimum,
}
"""Each mode's ``B(base, top)`` on colour channels scaled to 0-1."""


class _Layer(NamedTuple):
    """A picture ready to lay over others: colour 0-1, and coverage 0-1 (its alpha
    times the opacity) as one number or one value per pixel."""

    colour: np.ndarray
    coverage: np.ndarray | float


def _layer(pixels: np.ndarray, opacity: float) -> _Layer:
    """``pixels`` (uint8, RGB or RGBA) as a layer at ``opacity``."""
    colour = _unit(pixels[..., :3])
    if pixels.shape[-1] < 4:
        return _Layer(colour, opacity)
    return _Layer(colour, _unit(pixels[..., 3:]) * np.float32(opacity))


def _composite(base: np.ndarray, layer: _Layer, mode: BlendMode) -> np.ndarray:
    """``layer`` blended over the uint8 RGB or RGBA ``base``; the result has the base's
    channels. With an opaque base this is ``base + coverage * (B(base, top) - base)``."""
    colour = _unit(base[..., :3])
    mixed = BLEND_MODES[mode](colour, layer.colour)
    cover = layer.coverage
    if base.shape[-1] < 4:
        # In place on a new array (``mixed`` may be the layer's own colour).
        blended = np.subtract(mixed, colour)
        blended *= cover
        blended += colour
        return _to_bytes(blended)
    # W3C compositing: where the base is see-through, the top shows unblended.
    below = _unit(base[..., 3:])
    mixed = (1 - below) * layer.colour + below * mixed
    alpha = cover + below * (1 - cover)
    premultiplied = cover * mixed + below * colour * (1 - cover)
    unpremultiplied = np.divide(
        premultiplied, alpha, out=np.zeros_like(premultiplied), where=alpha > 0
    )
    return np.concatenate([_to_bytes(unpremultiplied), _to_bytes(alpha)], axis=-1)


def _unit(values: np.ndarray) -> np.ndarray:
    """uint8 channel values as float32 from 0 to 1."""
    return np.multiply(values, np.float32(1 / 255), dtype=np.float32)


def _to_bytes(values: np.ndarray) -> np.ndarray:
    """Values from 0 to 1 as uint8, rounded to nearest and clipped."""
    scaled = np.multiply(values, np.float32(255), dtype=np.float32)
    np.rint(scaled, out=scaled)
    np.clip(scaled, 0, 255, out=scaled)
    return scaled.astype(np.uint8)


def blend_pixels(
    base: np.ndarray, top: np.ndarray, mode: BlendMode = "normal", opacity: float = 1.0
) -> np.ndarray:
    """``top`` blended over ``base``: uint8 arrays of the same height and width, RGB or
    RGBA; the result has the base's channels."""
    if base.shape[:2] != top.shape[:2]:
        raise ValueError(f"sizes differ: {base.shape[:2]} and {top.shape[:2]}")
    return _composite(base, _layer(top, opacity), mode)


# --- The effect -----------------------------------------------------------------------


def blend(
    inputs: Sequence[Path], workdir: Path, params: BlendParams, context: RenderContext
) -> Path:
    """The second input over the first: a still for two images, a clip when the first
    is a video or an animation."""
    first = probe_input(inputs[0], _ACCEPTS, context.limits)
    second = probe_input(inputs[1], _ACCEPTS, context.limits)
    if first.kind == "image" and second.kind == "video":
        raise MediaError(
            "blend over an image takes an image as its second input, but the second input "
            f"is {second.describe()}; put the video first to blend over every frame"
        )
    if first.kind == "image":
        return _blend_images(inputs[0], inputs[1], workdir, params, context)
    return _blend_video(inputs, second, workdir, params, context)


def _blend_images(
    first: Path, second: Path, workdir: Path, params: BlendParams, context: RenderContext
) -> Path:
    base = open_image(first, context.limits)
    top = _fit(open_image(second, context.limits), base.size)
    pixels = blend_pixels(np.asarray(base), np.asarray(top), params.mode, params.opacity)
    output = save_still(Image.fromarray(pixels), workdir, params.encoding)
    context.progress(100.0)
    return output


def _fit(picture: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``picture`` stretched to ``size``; colour is resampled premultiplied, so
    transparent pixels do not bleed into their neighbours."""
    if picture.size == size:
        return picture
    if picture.mode == "RGBA":
        return picture.convert("RGBa").resize(size, Image.Resampling.LANCZOS).convert("RGBA")
    return picture.resize(size, Image.Resampling.LANCZOS)


def _blend_video(
    inputs: Sequence[Path],
    second: MediaInfo,
    workdir: Path,
    params: BlendParams,
    context: RenderContext,
) -> Path:
    """Every frame of the first clip with the second input laid over it; audio carried."""
    with ExitStack() as stack:
        src = stack.enter_context(open_source(inputs[0], context.limits))
        overlay = _overlay_at(stack, inputs[1], second, src.size, params, context.limits)
        output = stack.enter_context(open_output(workdir, params.encoding, src))
        out = output.video(src.size, src.fps)
        audio = output.audio(src)
        meter = Meter(src.frames, context.progress)
        with frames(src, audio) as pictures:
            for frame in pictures:
                assert isinstance(frame, av.VideoFrame)
                at = src.seconds(frame)
                layer = overlay(out.count * float(out.step) if at is None else at)
                out.write(_blend_frame(frame, layer, params.mode), at)
                meter.step()
        finish(out, audio)
    meter.finish()
    return output.path


def _overlay_at(
    stack: ExitStack,
    path: Path,
    info: MediaInfo,
    size: tuple[int, int],
    params: BlendParams,
    limits: MediaLimits,
) -> Callable[[float], _Layer]:
    """The layer to use at each time of the first clip: a still image, or the second
    clip's frame showing at that time."""
    if info.kind == "image":
        still = _layer(np.asarray(_fit(open_image(path, limits), size)), params.opacity)
        return lambda _seconds: still
    follower = _Follower.open(path, size, params.opacity, params.shorter, limits)
    return stack.enter_context(follower)


def _blend_frame(frame: av.VideoFrame, layer: _Layer, mode: BlendMode) -> av.VideoFrame:
    pixels = _composite(frame.to_ndarray(format="rgb24"), layer, mode)
    return av.VideoFrame.from_ndarray(pixels, format="rgb24")


class _Timed(NamedTuple):
    """A frame of the second clip and its time in seconds from that clip's start."""

    seconds: float
    frame: av.VideoFrame


class _Follower:
    """The second clip read alongside the first: :meth:`__call__` gives the layer for the
    frame showing at a time of the first clip. Frames are decoded as time moves on, so
    at most a few are held; a loop reopens the clip from its start."""

    def __init__(
        self,
        path: Path,
        size: tuple[int, int],
        opacity: float,
        shorter: Literal["loop", "hold"],
        limits: MediaLimits,
    ) -> None:
        self._path = path
        self._size = size
        self._opacity = opacity
        self._loop = shorter == "loop"
        self._limits = limits
        self._stack = ExitStack()
        self._frames: Iterator[_Timed] = iter(())
        self._step = 0.04
        self._offset = 0.0  # time of the first clip at which the current pass began
        self._current: _Timed | None = None
        self._next: _Timed | None = None
        self._layer: _Layer | None = None

    @classmethod
    @contextmanager
    def open(
        cls,
        path: Path,
        size: tuple[int, int],
        opacity: float,
        shorter: Literal["loop", "hold"],
        limits: MediaLimits,
    ) -> Iterator[_Follower]:
        """A follower reading ``path``, closed (its reader stopped) on exit."""
        follower = cls(path, size, opacity, shorter, limits)
        try:
            follower._restart()
            yield follower
        finally:
            follower._stack.close()

    def __call__(self, seconds: float) -> _Layer:
        """The layer for the frame showing ``seconds`` into the first clip."""
        self._advance(seconds - self._offset)
        assert self._current is not None  # _restart() refuses a clip without frames
        if self._next is None and self._loop:
            length = self._current.seconds + self._step
            local = seconds - self._offset
            if local >= length - _EPSILON:
                # Skip whole passes at once, so a very short clip is reopened only once here.
                self._offset += length * max(1, math.floor((local + _EPSILON) / length))
                self._restart()
                self._advance(seconds - self._offset)
        if self._layer is None:
            self._layer = self._to_layer(self._current.frame)
        return self._layer

    def _advance(self, local: float) -> None:
        """Move to the last frame starting at or before ``local`` seconds of this pass."""
        while self._next is not None and (
            self._current is None or self._next.seconds <= local + _EPSILON
        ):
            self._current, self._layer = self._next, None
            self._next = next(self._frames, None)

    def _restart(self) -> None:
        """(Re)open the clip at its start."""
        self._stack.close()
        self._stack = ExitStack()
        src = self._stack.enter_context(open_source(self._path, self._limits))
        self._step = 1 / float(src.fps)
        # Video only: the second clip's audio is not used.
        pictures = self._stack.enter_context(frames(replace(src, audio=None)))
        self._frames = _timed(src.seconds, pictures, self._step)
        self._current, self._layer = None, None
        self._next = next(self._frames, None)
        if self._next is None:
            raise MediaError("the second input holds no video frames")

    def _to_layer(self, frame: av.VideoFrame) -> _Layer:
        width, height = self._size
        pixels = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
        return _layer(pixels, self._opacity)


def _timed(
    seconds: Callable[[Any], float | None], pictures: Iterator[Any], step: float
) -> Iterator[_Timed]:
    """The frames of ``pictures`` with their clip times (guessed from the previous
    frame's when a frame has none)."""
    previous = -step
    for frame in pictures:
        at = seconds(frame)
        previous = previous + step if at is None else at
        yield _Timed(previous, frame)
