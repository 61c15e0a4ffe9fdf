"""Reading clips with PyAV: an open source's streams and clock, and a reader that
demuxes and decodes in a helper thread a few items ahead of the caller, so decoding
overlaps transforming and encoding on another core while memory stays flat."""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import av
import av.error
from PIL import Image

from l1.effects.formats import Format, default_format
from l1.effects.limits import MediaLimits
from l1.effects.media.animation import decoded_webp
from l1.effects.media.probe import (
    MediaError,
    MediaInfo,
    check_frame,
    is_cover_art,
    open_container,
    probe_input,
)

__all__ = [
    "ALL",
    "Item",
    "Source",
    "Window",
    "codec_name",
    "decoding",
    "open_sound",
    "open_source",
    "reading",
    "to_image",
]

_MAX_FPS = Fraction(240)
_FALLBACK_FPS = Fraction(25)
_READ_AHEAD = 4  # decoded frames waiting for the encoder: bounds memory
_T = TypeVar("_T")


class Window(NamedTuple):
    """A span of clip time in seconds, start included, end excluded."""

    start: float = 0.0
    end: float = math.inf

    def holds(self, seconds: float) -> bool:
        """True when ``seconds`` lies inside the window."""
        return self.start <= seconds < self.end


ALL = Window()
"""The whole clip."""


@dataclass
class Source:
    """An open input: its container, streams and clock (zero is the first video frame,
    or the audio's start when there is no video), the limits it is read under, the
    format a render of it is written in unless asked otherwise, and whether it is an
    animation (whose frames keep their own times) with its loop count."""

    container: av.container.InputContainer
    video: av.video.stream.VideoStream | None
    audio: av.audio.stream.AudioStream | None
    fps: Fraction
    frames: int
    duration: float | None
    origin: float
    limits: MediaLimits
    default_format: Format = "mp4"
    animated: bool = False
    loop: int | None = None
    # Refuse a file whose streams stop short of the length its header states. Off for
    # a part of a split render read by the next step: QuickTime counts the part's
    # length from zero while its frames start later.
    checks_length: bool = True

    @property
    def time_base(self) -> Fraction:
        """The clock of the video's timestamps."""
        return self.picture.time_base or 1 / self.fps

    @property
    def picture(self) -> av.video.stream.VideoStream:
        """The video stream (a source opened with :func:`open_source` has one)."""
        assert self.video is not None, "this source holds audio only"
        return self.video

    @property
    def size(self) -> tuple[int, int]:
        """Width and height of the video."""
        return self.picture.codec_context.width, self.picture.codec_context.height

    def seconds(self, item: av.VideoFrame | av.AudioFrame | av.Packet) -> float | None:
        """Clip time of a frame or packet."""
        if item.pts is None or item.time_base is None:
            return None
        return float(item.pts * item.time_base) - self.origin

    def seek(self, seconds: float) -> None:
        """Move to the key frame at or before ``seconds`` of clip time."""
        video = self.picture
        if seconds > 0 and video.time_base is not None:
            target = int((seconds + self.origin) / video.time_base)
            decoding(lambda: self.container.seek(target, stream=video, backward=True))


@contextmanager
def open_source(
    path: Path, limits: MediaLimits | None = None, *, threads: int = 0, part: bool = False
) -> Iterator[Source]:
    """The video in ``path``, refused with :class:`MediaError` unless it is one, decoded
    with ``threads`` threads (0: one per core); ``part``: a part of a split render."""
    limits = limits or MediaLimits()
    info = probe_input(path, {"video"}, limits)
    with ExitStack() as stack:
        if info.format == "WEBP":  # an animated WebP, which FFmpeg cannot decode
            frames = stack.enter_context(decoded_webp(path))
            container = decoding(lambda: stack.enter_context(av.open(frames, "r")))
        else:
            container = decoding(lambda: stack.enter_context(open_container(path)))
        src = _video_source(container, info, limits)
        src.picture.codec_context.thread_count = threads
        src.checks_length = not part
        yield src


@contextmanager
def open_sound(path: Path, limits: MediaLimits | None = None) -> Iterator[Source]:
    """The audio of ``path`` (a video with sound or an audio file)."""
    with ExitStack() as stack:
        container = decoding(lambda: stack.enter_context(open_container(path)))
        if not container.streams.audio:
            raise MediaError("the second input holds no audio stream")
        audio = container.streams.audio[0]
        limits = limits or MediaLimits()
        yield Source(container, None, audio, _FALLBACK_FPS, 0, None, _start(audio), limits)


def _video_source(
    container: av.container.InputContainer, info: MediaInfo, limits: MediaLimits
) -> Source:
    video = next(s for s in container.streams.video if not is_cover_art(s))
    video.thread_type = "AUTO"
    audio = container.streams.audio[0] if container.streams.audio else None
    # An animation's rate is its average (its container's is only a clock).
    fps = Fraction(info.fps).limit_denominator(1001) if info.animated and info.fps else None
    fps = fps or _frame_rate(video)
    frames = info.frames or round((info.duration or 0) * fps)
    return Source(
        container,
        video,
        audio,
        fps,
        frames,
        info.duration,
        _start(video),
        limits,
        default_format=_default_format(container, info, video, audio),
        animated=info.animated,
        loop=info.loop,
    )


def _default_format(
    container: av.container.InputContainer,
    info: MediaInfo,
    video: av.video.stream.VideoStream,
    audio: av.audio.stream.AudioStream | None,
) -> Format:
    if info.format == "WEBP":
        return "webp"
    return default_format(
        container.format.name,
        brand=str(container.metadata.get("major_brand", "")),
        video_codec=codec_name(video),
        audio_codec=codec_name(audio) if audio is not None else "",
    )


def codec_name(stream: av.stream.Stream) -> str:
    """The codec of ``stream`` as FFmpeg names the format (``"av1"``, ``"mp3"``), not
    as its decoder is called (``"libdav1d"``, ``"mp3float"``)."""
    return str(stream.codec_context.codec.canonical_name)


def _start(stream: av.stream.Stream) -> float:
    start = stream.start_time if stream.start_time is not None else 0
    return float(start * stream.time_base) if stream.time_base else 0.0


def _frame_rate(stream: av.video.stream.VideoStream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate
    if not rate or rate <= 0:
        return _FALLBACK_FPS
    # Variable-rate sources can report rates like 1200000/49999; keep the encoder's clock sane.
    return min(Fraction(rate).limit_denominator(1001), _MAX_FPS)


def decoding(call: Callable[[], _T]) -> _T:
    """Run a demux/decode step; FFmpeg's complaints about the input become MediaError."""
    try:
        return call()
    except av.error.FFmpegError as error:
        raise MediaError(f"the video could not be decoded: {error}") from None


Item = av.VideoFrame | Image.Image | av.Packet
"""A decoded video frame (or, when asked, its RGB picture) or a raw audio packet."""


def _read(src: Source, pictures: bool) -> Iterator[Item]:
    """Decoded video frames and raw audio packets, in file order; the limits are held to
    frame by frame, whatever the container claimed."""
    video = src.picture
    streams = [video] if src.audio is None else [video, src.audio]
    packets = decoding(lambda: src.container.demux(*streams))
    count = 0
    reached = -math.inf
    while (packet := decoding(lambda: next(packets, None))) is not None:
        reached = max(reached, _end_of(packet))
        if packet.stream.type != "video":
            yield packet
            continue
        for frame in decoding(lambda: video.decode(packet)):
            count += 1
            _hold_to_limits(src, frame, count)
            yield to_image(frame) if pictures else frame
    _check_whole(src, reached)


# Containers whose header states the whole duration, so a file cut short shows.
_STATED_DURATION = frozenset({"matroska,webm", "mov,mp4,m4a,3gp,3g2,mj2"})


def _end_of(packet: av.Packet) -> float:
    """Where ``packet`` ends, in seconds of its file's clock."""
    if packet.pts is None or packet.time_base is None:
        return -math.inf
    return float((packet.pts + (packet.duration or 0)) * packet.time_base)


def _check_whole(src: Source, reached: float) -> None:
    """Refuse a file whose streams stop well before the end its header states: it was
    cut short (FFmpeg only warns, and the render would quietly lose the rest)."""
    container = src.container
    if not src.checks_length or container.format.name not in _STATED_DURATION:
        return
    if not container.duration:
        return
    start = (container.start_time or 0) / av.time_base
    stated = container.duration / av.time_base
    slack = max(2 / float(src.fps), 0.05 * stated)
    if reached - start < stated - slack:
        raise MediaError(
            f"the file ends early: its header says {stated:.2f} s, but its streams stop at "
            f"{max(0.0, reached - start):.2f} s; it looks truncated"
        )


def _hold_to_limits(src: Source, frame: av.VideoFrame, count: int) -> None:
    limits = src.limits
    check_frame(frame.width, frame.height, limits)
    if count > limits.max_frames:
        raise MediaError(f"refused: the video has more than {limits.max_frames:,} frames")
    seconds = src.seconds(frame)
    if seconds is not None and seconds > limits.max_seconds:
        raise MediaError(f"refused: the video lasts longer than {limits.max_seconds:,.0f} s")


def to_image(frame: av.VideoFrame) -> Image.Image:
    """The frame as an RGB picture (RGBA when it has alpha) sharing the converted
    frame's memory (no extra copy)."""
    # Two or four components: grey or colour with alpha (a GIF's transparency).
    mode = "RGBA" if len(frame.format.components) in (2, 4) else "RGB"
    # The frame's own range (its matrix PyAV reads by itself): full-range video would
    # otherwise be read as limited and lose its blacks and whites.
    rgb = frame.reformat(
        format="rgba" if mode == "RGBA" else "rgb24",
        src_color_range=int(frame.color_range) or None,
    )
    plane = rgb.planes[0]
    size = (rgb.width, rgb.height)
    # A VideoPlane exposes the buffer protocol, which Pillow's stubs do not list.
    return Image.frombuffer(mode, size, plane, "raw", mode, plane.line_size, 1)  # type: ignore[arg-type]


@contextmanager
def reading(src: Source, *, pictures: bool = False) -> Iterator[Iterator[Item]]:
    """Demux and decode ``src`` in a helper thread a few items ahead of the caller; the
    thread is stopped on exit, before the container can close under it."""
    ahead = _ReadAhead(_read(src, pictures))
    try:
        yield ahead.items()
    finally:
        ahead.stop()


class _ReadAhead:
    """Runs an iterator in a thread, at most :data:`_READ_AHEAD` items ahead."""

    def __init__(self, items: Iterator[Item]) -> None:
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=_READ_AHEAD)
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(items,), name="l1-video-read", daemon=True
        )
        self._thread.start()

    def items(self) -> Iterator[Item]:
        """The items in order; an error raised while reading is raised here."""
        while True:
            kind, value = self._queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value

    def stop(self) -> None:
        """Stop reading and wait for the thread, emptying the queue so it cannot block."""
        self._stopping.set()
        while self._thread.is_alive():
            with suppress(queue.Empty):
                while True:
                    self._queue.get_nowait()
            self._thread.join(timeout=0.01)

    def _run(self, items: Iterator[Item]) -> None:
        try:
            for item in items:
                self._queue.put(("item", item))
                if self._stopping.is_set():
                    return
            self._queue.put(("end", None))
        except BaseException as error:  # handed over to the consuming thread
            self._queue.put(("error", error))
