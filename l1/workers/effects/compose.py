"""Two-input effects: ``blend`` lays one picture or clip over another, ``mux`` puts
the sound of one file under the pictures of another.

``blend`` composites the second input over the first with a separable blend mode
(the W3C Compositing and Blending formulas) at an ``opacity``; the second input's
own transparency, if any, thins it further. Two images give a PNG the size of the
first; a video first gives an H.264/MP4 of the first clip's length, size and frame
rate, streamed frame by frame as :mod:`l1.workers.effects.video` does, with the first
clip's audio carried over. A second video shorter than the first is looped or its
last frame held (``shorter``).

``mux`` copies the first input's video stream (re-encoding it only when MP4 cannot
hold its codec) and takes the audio of the second input (a video with sound or an
audio file), copied when MP4 can hold the codec and re-encoded as AAC otherwise,
cut where the video ends. Packets of the two files are interleaved by time, so
neither is read far ahead of the other.
"""

from __future__ import annotations

import heapq
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Final, Literal, NamedTuple

import av
import msgspec
import numpy as np
from PIL import Image

from l1.workers.effects import image, media, video
from l1.workers.effects.image import save_png
from l1.workers.effects.media import MediaError, MediaInfo, open_image, probe, probe_input
from l1.workers.effects.registry import Effect, Progress
from l1.workers.effects.video import (
    OUTPUT_NAME,
    VideoEncoding,
    VideoParams,
    _audio_out,
    _decoding,
    _finish,
    _Meter,
    _open_source,
    _open_target,
    _reading,
    _Source,
    _VideoOut,
    _Window,
)

__all__ = [
    "BLEND_MODES",
    "BlendMode",
    "BlendParams",
    "MuxParams",
    "blend",
    "blend_pixels",
    "compose_effects",
    "mux",
]

BlendMode = Literal[
    "normal", "multiply", "screen", "overlay", "add", "difference", "lighten", "darken"
]

_ACCEPTS: frozenset[Any] = frozenset({"image", "video"})
_AUDIO_ENCODER: Final = "aac"
_EPSILON = 1e-6  # seconds: float clocks may land a hair before a frame's time


# --- Parameters -----------------------------------------------------------------------


class BlendParams(VideoParams, kw_only=True):
    """Lay the second input over the first. ``mode`` picks how colours combine and
    ``opacity`` how much of the result shows (0 leaves the first input as it was, 1 is
    the full blend). ``shorter`` says what a second video shorter than the first does
    once it ends: start again (``loop``) or keep showing its last frame (``hold``)."""

    mode: BlendMode = "normal"
    opacity: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.5
    shorter: Literal["loop", "hold"] = "loop"


class MuxParams(VideoParams, kw_only=True):
    """The first input's video with the second input's audio. ``encoding`` applies only
    when the video has to be re-encoded (MP4 cannot hold its codec)."""


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


# --- blend ----------------------------------------------------------------------------


def blend(inputs: Sequence[Path], workdir: Path, params: BlendParams, progress: Progress) -> Path:
    """The second input over the first: PNG for two images, MP4 when the first is a video."""
    first = probe_input(inputs[0], _ACCEPTS)
    second = probe_input(inputs[1], _ACCEPTS)
    if first.kind == "image" and second.kind == "video":
        raise MediaError(
            "blend over an image takes an image as its second input, but the second input "
            f"is {second.describe()}; put the video first to blend over every frame"
        )
    if first.kind == "image":
        return _blend_images(inputs[0], inputs[1], workdir, params, progress)
    return _blend_video(inputs, second, workdir, params, progress)


def _blend_images(
    first: Path, second: Path, workdir: Path, params: BlendParams, progress: Progress
) -> Path:
    base = open_image(first)
    top = _fit(open_image(second), base.size)
    pixels = blend_pixels(np.asarray(base), np.asarray(top), params.mode, params.opacity)
    output = save_png(Image.fromarray(pixels), workdir)
    progress(100.0)
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
    progress: Progress,
) -> Path:
    """Every frame of the first clip with the second input laid over it; audio carried."""
    target = workdir / OUTPUT_NAME
    with ExitStack() as stack:
        src = stack.enter_context(_open_source(inputs[0]))
        overlay = _overlay_at(stack, inputs[1], second, src.size, params)
        output = stack.enter_context(_open_target(target))
        out = _VideoOut(output, src.size, src.fps, params.encoding)
        audio = _audio_out(output, src, _Window())
        meter = _Meter(src.frames, progress)
        with _reading(src) as items:
            for item in items:
                if isinstance(item, av.VideoFrame):
                    at = src.seconds(item)
                    layer = overlay(out.count * float(out.step) if at is None else at)
                    out.write(_blend_frame(item, layer, params.mode))
                    meter.step()
                elif isinstance(item, av.Packet) and audio is not None:
                    audio.feed(item)
        _finish(out, audio)
    meter.finish()
    return target


def _overlay_at(
    stack: ExitStack, path: Path, info: MediaInfo, size: tuple[int, int], params: BlendParams
) -> Callable[[float], _Layer]:
    """The layer to use at each time of the first clip: a still image, or the second
    clip's frame showing at that time."""
    if info.kind == "image":
        still = _layer(np.asarray(_fit(open_image(path), size)), params.opacity)
        return lambda _seconds: still
    return stack.enter_context(_Follower.open(path, size, params.opacity, params.shorter))


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
        self, path: Path, size: tuple[int, int], opacity: float, shorter: Literal["loop", "hold"]
    ) -> None:
        self._path = path
        self._size = size
        self._opacity = opacity
        self._loop = shorter == "loop"
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
        cls, path: Path, size: tuple[int, int], opacity: float, shorter: Literal["loop", "hold"]
    ) -> Iterator[_Follower]:
        """A follower reading ``path``, closed (its reader stopped) on exit."""
        follower = cls(path, size, opacity, shorter)
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
        src = self._stack.enter_context(_open_source(self._path))
        self._step = 1 / float(src.fps)
        # Video only: the second clip's audio is not used.
        items = self._stack.enter_context(_reading(replace(src, audio=None)))
        self._frames = _timed(src, items, self._step)
        self._current, self._layer = None, None
        self._next = next(self._frames, None)
        if self._next is None:
            raise MediaError("the second input holds no video frames")

    def _to_layer(self, frame: av.VideoFrame) -> _Layer:
        width, height = self._size
        pixels = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
        return _layer(pixels, self._opacity)


def _timed(src: _Source, items: Iterator[Any], step: float) -> Iterator[_Timed]:
    """The video frames of ``items`` with their clip times (guessed from the previous
    frame's when a frame has none)."""
    previous = -step
    for item in items:
        if isinstance(item, av.VideoFrame):
            at = src.seconds(item)
            previous = previous + step if at is None else at
            yield _Timed(previous, item)


# --- mux ------------------------------------------------------------------------------


def mux(inputs: Sequence[Path], workdir: Path, params: MuxParams, progress: Progress) -> Path:
    """The first input's video with the second input's audio, cut to the video's length."""
    _require_mux_inputs(probe(inputs[0]), probe(inputs[1]))
    target = workdir / OUTPUT_NAME
    with (
        _open_source(inputs[0]) as src,
        _open_sound(inputs[1]) as sound,
        _open_target(target) as output,
    ):
        end = _video_end(src)
        picture = _picture_out(output, src, params.encoding)
        audio = _sound_out(output, sound, end)
        meter = _Meter(src.frames, progress)
        for track, packet in _interleaved(_video_packets(src), _audio_packets(sound, end)):
            if track == "video":
                picture.write(packet)
                meter.step()
            else:
                audio.write(packet)
        picture.finish()
        audio.finish()
    meter.finish()
    return target


def _require_mux_inputs(first: MediaInfo, second: MediaInfo) -> None:
    if first.kind != "video":
        raise MediaError(
            f"mux takes a video as its first input, but the first input is {first.describe()}"
        )
    if not second.has_audio:
        what = f"{second.describe()} without audio" if second.kind == "video" else None
        raise MediaError(
            "mux takes the audio of its second input (a video with sound or an audio "
            f"file), but the second input is {what or second.describe()}"
        )


@dataclass
class _Sound:
    """An open input's audio stream and clock (zero is the stream's start)."""

    container: av.container.InputContainer
    stream: av.audio.stream.AudioStream
    origin: float

    def seconds(self, packet: av.Packet) -> float | None:
        if packet.pts is None or packet.time_base is None:
            return None
        return float(packet.pts * packet.time_base) - self.origin


@contextmanager
def _open_sound(path: Path) -> Iterator[_Sound]:
    with ExitStack() as stack:
        container = _decoding(lambda: stack.enter_context(media.open_container(path)))
        if not container.streams.audio:
            raise MediaError("the second input holds no audio stream")
        stream = container.streams.audio[0]
        start = stream.start_time if stream.start_time is not None else 0
        origin = float(start * stream.time_base) if stream.time_base else 0.0
        yield _Sound(container, stream, origin)


def _video_end(src: _Source) -> float:
    """Where the video ends, in seconds of clip time (infinite when nothing says)."""
    if src.duration:
        return src.duration
    return src.frames / float(src.fps) if src.frames else math.inf


_Tagged = tuple[str, av.Packet]


def _video_packets(src: _Source) -> Iterator[tuple[float, _Tagged]]:
    """The first input's video packets, keyed by decoding time."""
    packets = _decoding(lambda: src.container.demux(src.video))
    while (packet := _decoding(lambda: next(packets, None))) is not None:
        if packet.size and packet.time_base is not None:
            stamp = packet.dts if packet.dts is not None else packet.pts
            key = -math.inf if stamp is None else float(stamp * packet.time_base)
            yield key - src.origin, ("video", packet)


def _audio_packets(sound: _Sound, end: float) -> Iterator[tuple[float, _Tagged]]:
    """The second input's audio packets from its start (one packet of lead-in kept, for
    codecs that prime their decoder with it) until ``end`` seconds."""
    packets = _decoding(lambda: sound.container.demux(sound.stream))
    while (packet := _decoding(lambda: next(packets, None))) is not None:
        seconds = sound.seconds(packet)
        if not packet.size or seconds is None or packet.time_base is None:
            continue
        if seconds >= end:
            return
        lead_in = float(packet.duration * packet.time_base) if packet.duration else 0.0
        if seconds >= -lead_in:
            yield seconds, ("audio", packet)


def _interleaved(
    *tracks: Iterator[tuple[float, _Tagged]],
) -> Iterator[_Tagged]:
    """The packets of all ``tracks`` in time order, each track read only as far as needed."""
    for _key, tagged in heapq.merge(*tracks, key=lambda keyed: keyed[0]):
        yield tagged


class _PacketCopy:
    """Packets copied unchanged into a stream of the output, moved onto its clock."""

    def __init__(
        self, output: av.container.OutputContainer, template: av.stream.Stream, origin: float
    ) -> None:
        self._output = output
        self._stream = output.add_stream_from_template(template)
        self._origin = origin

    def write(self, packet: av.Packet) -> None:
        assert packet.time_base is not None  # the packet readers skip packets without one
        shift = round(self._origin / packet.time_base)
        if packet.pts is not None:
            packet.pts -= shift
        if packet.dts is not None:
            packet.dts -= shift
        packet.stream = self._stream
        self._output.mux(packet)

    def finish(self) -> None:
        """Nothing is buffered."""


class _PictureEncode:
    """Video packets decoded and re-encoded as H.264."""

    def __init__(
        self, output: av.container.OutputContainer, src: _Source, encoding: VideoEncoding
    ) -> None:
        self._stream = src.video
        self._out = _VideoOut(output, src.size, src.fps, encoding)

    def write(self, packet: av.Packet) -> None:
        for frame in _decoding(lambda: self._stream.decode(packet)):
            self._out.write(frame)

    def finish(self) -> None:
        """Drain the decoder, then the encoder."""
        for frame in _decoding(lambda: self._stream.decode(None)):
            self._out.write(frame)
        self._out.finish()


class _SoundEncode:
    """Audio packets decoded, cut to end at ``end`` seconds and encoded as AAC."""

    def __init__(self, output: av.container.OutputContainer, sound: _Sound, end: float) -> None:
        context = sound.stream.codec_context
        rate = context.sample_rate or 48_000
        # AAC takes mono and stereo everywhere; wider layouts are folded to stereo.
        layout = "mono" if context.channels == 1 else "stereo"
        stream = output.add_stream(_AUDIO_ENCODER, rate=rate)
        stream.layout = layout
        stream.codec_context.time_base = Fraction(1, rate)
        self._output = output
        self._stream = stream
        self._sound = sound
        self._end = end
        self._rate = rate
        self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        self._samples = 0

    def write(self, packet: av.Packet) -> None:
        self._encode_frames(_decoding(lambda: self._sound.stream.decode(packet)))

    def finish(self) -> None:
        """Drain the decoder, the resampler and the encoder."""
        self._encode_frames(_decoding(lambda: self._sound.stream.decode(None)))
        self._encode(self._resampler.resample(None))
        self._output.mux(self._stream.encode(None))

    def _encode_frames(self, frames: Sequence[av.AudioFrame]) -> None:
        for frame in frames:
            start = None if frame.time is None else frame.time - self._sound.origin
            if start is not None and not -frame.samples / frame.sample_rate < start < self._end:
                continue
            self._encode(self._resampler.resample(frame))

    def _encode(self, frames: Sequence[av.AudioFrame]) -> None:
        for frame in frames:
            frame.pts = self._samples
            frame.time_base = Fraction(1, self._rate)
            self._samples += frame.samples
            self._output.mux(self._stream.encode(frame))


_Writer = _PacketCopy | _PictureEncode | _SoundEncode


def _picture_out(
    output: av.container.OutputContainer, src: _Source, encoding: VideoEncoding
) -> _Writer:
    """Copy the video when MP4 can hold its codec; otherwise re-encode it as H.264."""
    if src.video.codec_context.name in output.supported_codecs:
        return _PacketCopy(output, src.video, src.origin)
    return _PictureEncode(output, src, encoding)


def _sound_out(output: av.container.OutputContainer, sound: _Sound, end: float) -> _Writer:
    """Copy the audio when MP4 can hold its codec; otherwise re-encode it as AAC."""
    if sound.stream.codec_context.name in output.supported_codecs:
        return _PacketCopy(output, sound.stream, sound.origin)
    return _SoundEncode(output, sound, end)


# --- Effects --------------------------------------------------------------------------


def compose_effects() -> list[Effect]:
    """``blend`` and ``mux``."""
    return [
        _effect(
            "blend",
            "Lay the second input over the first with a blend mode and opacity.",
            blend,
            BlendParams,
            _ACCEPTS,
        ),
        _effect(
            "mux",
            "The first input's video with the second input's audio, cut to the video.",
            mux,
            MuxParams,
            frozenset({"video", "audio"}),
        ),
    ]


def _effect(
    name: str,
    description: str,
    render: Callable[..., Path],
    params: type[VideoParams],
    accepts: frozenset[Any],
) -> Effect:
    version = "1"
    modules = [media, video, image, sys.modules[__name__]]
    return Effect(
        name=name,
        version=version,
        description=description,
        render=render,
        params=params,
        accepts=accepts,
        inputs=2,
        content_hash=media.source_hash(name, version, modules),
    )
