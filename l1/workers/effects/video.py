"""Video rendering with PyAV: per-frame effects over a clip, and the video-only
effects ``segment``, ``speed`` and ``concatenate``.

Every render streams: a helper thread demuxes and decodes at most a few frames
ahead (so decoding overlaps encoding on another core), and each frame is
transformed and handed to the encoder in turn, so memory stays flat whatever the
clip's length.

Output is H.264 (``libx264``, yuv420p) in MP4 at the source's average frame rate
(constant frame rate). yuv420p needs even dimensions, so an odd width or height
is rounded down by one pixel. Encoder settings come from the ``encoding`` field
every video-capable effect accepts (:class:`VideoEncoding`: ``crf`` 23 and
``preset`` ``"veryfast"`` unless a run asks otherwise).

Audio: per-frame effects and ``segment`` copy the audio packets unchanged when
MP4 can hold the codec (AAC, MP3, Opus...), otherwise re-encode them as AAC;
``speed`` time-stretches the audio (pitch kept, FFmpeg's ``atempo``) and
``concatenate`` re-encodes both clips' audio as one AAC track.
"""

from __future__ import annotations

import math
import queue
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Final, Literal, NamedTuple, TypeVar

import av
import av.error
import av.filter
import msgspec
from PIL import Image, ImageOps

from l1.workers.effects import media
from l1.workers.effects.media import MediaError, probe_input
from l1.workers.effects.registry import Effect, Progress

__all__ = [
    "OUTPUT_NAME",
    "ConcatenateParams",
    "SegmentParams",
    "SpeedParams",
    "VideoEncoding",
    "VideoParams",
    "concatenate",
    "map_frames",
    "segment",
    "speed",
    "video_effects",
]

OUTPUT_NAME = "output.mp4"
_ENCODER: Final = "libx264"
_AUDIO_ENCODER: Final = "aac"
_MAX_FPS = Fraction(240)
_FALLBACK_FPS = Fraction(25)
_READ_AHEAD = 4  # decoded frames waiting for the encoder: bounds memory
_T = TypeVar("_T")

Preset = Literal[
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
]


class VideoEncoding(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """H.264 encoder settings for a video output (ignored when the output is an image)."""

    crf: Annotated[int, msgspec.Meta(ge=0, le=51, description="quality: lower is better")] = 23
    preset: Annotated[Preset, msgspec.Meta(description="slower presets compress better")] = (
        "veryfast"
    )


class VideoParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Parameters of an effect that can write video: the encoder settings."""

    encoding: VideoEncoding = msgspec.field(default_factory=VideoEncoding)


class SegmentParams(VideoParams, kw_only=True):
    """The part of the clip from ``start`` lasting ``duration`` seconds (to the end if unset)."""

    start: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = 0.0
    duration: Annotated[float, msgspec.Meta(gt=0, le=86_400)] | None = None


class SpeedParams(VideoParams, kw_only=True):
    """Play ``factor`` times faster (0.5 is half speed); frames are dropped or repeated
    to keep the frame rate, and the audio is time-stretched keeping its pitch."""

    factor: Annotated[float, msgspec.Meta(ge=0.25, le=4.0)] = 2.0


class ConcatenateParams(VideoParams, kw_only=True):
    """The first clip then the second, at the first clip's size and frame rate."""


class _Window(NamedTuple):
    """A span of clip time in seconds, start included, end excluded."""

    start: float = 0.0
    end: float = math.inf

    def holds(self, seconds: float) -> bool:
        return self.start <= seconds < self.end


@dataclass
class _Source:
    """An open input clip: its container, streams and clock."""

    container: av.container.InputContainer
    video: av.video.stream.VideoStream
    audio: av.audio.stream.AudioStream | None
    fps: Fraction
    frames: int
    duration: float | None
    origin: float

    @property
    def size(self) -> tuple[int, int]:
        return self.video.codec_context.width, self.video.codec_context.height

    def seconds(self, item: av.VideoFrame | av.AudioFrame | av.Packet) -> float | None:
        """Clip time of a frame or packet: zero is the first video frame."""
        if item.pts is None or item.time_base is None:
            return None
        return float(item.pts * item.time_base) - self.origin

    def seek(self, seconds: float) -> None:
        """Move to the key frame at or before ``seconds`` of clip time."""
        if seconds > 0 and self.video.time_base is not None:
            target = int((seconds + self.origin) / self.video.time_base)
            _decoding(lambda: self.container.seek(target, stream=self.video, backward=True))


def map_frames(
    source: Path,
    workdir: Path,
    transform: Callable[[Image.Image], Image.Image],
    encoding: VideoEncoding,
    progress: Progress,
) -> Path:
    """Apply ``transform`` to every frame of the video ``source``, one frame at a time;
    the audio is carried over. Returns the MP4 written under ``workdir``."""
    target = workdir / OUTPUT_NAME
    with _open_source(source) as src, _open_target(target) as output:
        # The output size is fixed before the first packet is written.
        size = transform(Image.new("RGB", src.size)).size
        video = _VideoOut(output, size, src.fps, encoding)
        audio = _audio_out(output, src, _Window())
        meter = _Meter(src.frames, progress)
        with _reading(src, pictures=True) as items:
            for item in items:
                if isinstance(item, Image.Image):
                    video.write(transform(item))
                    meter.step()
                elif isinstance(item, av.Packet) and audio is not None:
                    audio.feed(item)
        _finish(video, audio)
    meter.finish()
    return target


def segment(
    inputs: Sequence[Path], workdir: Path, params: SegmentParams, progress: Progress
) -> Path:
    """The part of the clip from ``params.start`` lasting ``params.duration`` seconds."""
    target = workdir / OUTPUT_NAME
    with _open_source(inputs[0]) as src:
        window = _segment_window(src, params)
        src.seek(window.start)
        with _open_target(target) as output:
            video = _VideoOut(output, src.size, src.fps, params.encoding)
            audio = _audio_out(output, src, window)
            meter = _Meter(_segment_frames(src, window), progress)
            _copy_window(src, window, video, audio, meter)
            if video.count == 0:
                raise MediaError(f"the segment from {window.start:g} s holds no video frames")
            _finish(video, audio)
    meter.finish()
    return target


def speed(inputs: Sequence[Path], workdir: Path, params: SpeedParams, progress: Progress) -> Path:
    """The clip played ``params.factor`` times faster at the same frame rate; the audio
    is time-stretched to match (its pitch is kept)."""
    target = workdir / OUTPUT_NAME
    with _open_source(inputs[0]) as src, _open_target(target) as output:
        video = _VideoOut(output, src.size, src.fps, params.encoding)
        audio = _AudioEncode.like(output, src, tempo=params.factor) if src.audio else None
        meter = _Meter(round(src.frames / params.factor), progress)
        retimer = _Retimer(step=params.factor / src.fps)
        with _reading(src) as items:
            for item in items:
                if isinstance(item, av.VideoFrame):
                    _write_all(video, retimer.push(item, src.seconds(item)), meter)
                elif isinstance(item, av.Packet) and audio is not None:
                    audio.feed(item)
        _write_all(video, retimer.finish(1 / src.fps), meter)
        _finish(video, audio)
    meter.finish()
    return target


def concatenate(
    inputs: Sequence[Path], workdir: Path, params: ConcatenateParams, progress: Progress
) -> Path:
    """The first clip then the second, at the first clip's size and frame rate (the
    second is scaled to fit, letterboxed in black). Audio is re-encoded as AAC; a
    clip without audio contributes silence when the other has some."""
    target = workdir / OUTPUT_NAME
    with (
        _open_source(inputs[0]) as first,
        _open_source(inputs[1]) as second,
        _open_target(target) as output,
    ):
        video = _VideoOut(output, first.size, first.fps, params.encoding)
        audio = _concat_audio(output, first, second)
        meter = _Meter(first.frames + round(second.frames * first.fps / second.fps), progress)
        fit = _fit_to(first.size)
        for src in (first, second):
            _append_clip(src, fit, video, audio, meter)
        _finish(video, audio)
    meter.finish()
    return target


def video_effects() -> list[Effect]:
    """``segment``, ``speed`` and ``concatenate``."""
    return [
        _effect(
            "segment",
            "Cut the part of a clip from start for duration seconds.",
            segment,
            SegmentParams,
        ),
        _effect(
            "speed",
            "Play a clip faster or slower; audio is time-stretched.",
            speed,
            SpeedParams,
        ),
        _effect(
            "concatenate",
            "Join two clips; the output has the first clip's size and frame rate.",
            concatenate,
            ConcatenateParams,
            inputs=2,
        ),
    ]


def _effect(
    name: str,
    description: str,
    render: Callable[..., Path],
    params: type[VideoParams],
    *,
    inputs: int = 1,
) -> Effect:
    version = "1"
    return Effect(
        name=name,
        version=version,
        description=description,
        render=render,
        params=params,
        accepts=frozenset({"video"}),
        inputs=inputs,
        content_hash=media.source_hash(name, version, [media, sys.modules[__name__]]),
    )


# --- Opening inputs and outputs -------------------------------------------------------


@contextmanager
def _open_source(path: Path) -> Iterator[_Source]:
    info = probe_input(path, {"video"})
    with ExitStack() as stack:
        container = _decoding(lambda: stack.enter_context(media.open_container(path)))
        yield _source(container, info)


def _source(container: av.container.InputContainer, info: media.MediaInfo) -> _Source:
    video = next(s for s in container.streams.video if not _is_cover_art(s))
    video.thread_type = "AUTO"
    audio = container.streams.audio[0] if container.streams.audio else None
    fps = _frame_rate(video)
    start = video.start_time if video.start_time is not None else 0
    origin = float(start * video.time_base) if video.time_base else 0.0
    frames = info.frames or round((info.duration or 0) * fps)
    return _Source(container, video, audio, fps, frames, info.duration, origin)


def _is_cover_art(stream: av.video.stream.VideoStream) -> bool:
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def _frame_rate(stream: av.video.stream.VideoStream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate
    if not rate or rate <= 0:
        return _FALLBACK_FPS
    # Variable-rate sources can report rates like 1200000/49999; keep the encoder's clock sane.
    return min(Fraction(rate).limit_denominator(1001), _MAX_FPS)


@contextmanager
def _open_target(path: Path) -> Iterator[av.container.OutputContainer]:
    # faststart puts the index first, so players can start before the download ends.
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as output:
        yield output


def _decoding(call: Callable[[], _T]) -> _T:
    """Run a demux/decode step; FFmpeg's complaints about the input become MediaError."""
    try:
        return call()
    except av.error.FFmpegError as error:
        raise MediaError(f"the video could not be decoded: {error}") from None


_Item = av.VideoFrame | Image.Image | av.Packet
"""A decoded video frame (or, when asked, its RGB picture) or a raw audio packet."""


def _read(src: _Source, pictures: bool) -> Iterator[_Item]:
    """Decoded video frames and raw audio packets, in file order."""
    streams = [src.video] if src.audio is None else [src.video, src.audio]
    packets = _decoding(lambda: src.container.demux(*streams))
    while (packet := _decoding(lambda: next(packets, None))) is not None:
        if packet.stream.type != "video":
            yield packet
            continue
        for frame in _decoding(lambda: src.video.decode(packet)):
            yield _to_image(frame) if pictures else frame


def _to_image(frame: av.VideoFrame) -> Image.Image:
    """The frame as an RGB picture sharing the converted frame's memory (no extra copy)."""
    rgb = frame.reformat(format="rgb24")
    plane = rgb.planes[0]
    size = (rgb.width, rgb.height)
    # A VideoPlane exposes the buffer protocol, which Pillow's stubs do not list.
    return Image.frombuffer("RGB", size, plane, "raw", "RGB", plane.line_size, 1)  # type: ignore[arg-type]


@contextmanager
def _reading(src: _Source, *, pictures: bool = False) -> Iterator[Iterator[_Item]]:
    """Demux and decode ``src`` in a helper thread a few items ahead of the caller, so
    decoding overlaps transforming and encoding; the thread is stopped on exit, before
    the container can close under it."""
    ahead = _ReadAhead(_read(src, pictures))
    try:
        yield ahead.items()
    finally:
        ahead.stop()


class _ReadAhead:
    """Runs an iterator in a thread, at most :data:`_READ_AHEAD` items ahead."""

    def __init__(self, items: Iterator[_Item]) -> None:
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=_READ_AHEAD)
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(items,), name="l1-video-read", daemon=True
        )
        self._thread.start()

    def items(self) -> Iterator[_Item]:
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

    def _run(self, items: Iterator[_Item]) -> None:
        try:
            for item in items:
                self._queue.put(("item", item))
                if self._stopping.is_set():
                    return
            self._queue.put(("end", None))
        except BaseException as error:  # handed over to the consuming thread
            self._queue.put(("error", error))


# --- Video out ------------------------------------------------------------------------


class _VideoOut:
    """The H.264 stream of the output; frames get consecutive timestamps."""

    def __init__(
        self,
        output: av.container.OutputContainer,
        size: tuple[int, int],
        fps: Fraction,
        encoding: VideoEncoding,
    ) -> None:
        options = {"crf": str(encoding.crf), "preset": encoding.preset}
        stream = output.add_stream(_ENCODER, rate=fps, options=options)
        stream.width, stream.height = _even(size)
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = 1 / fps
        stream.codec_context.thread_count = 0  # libx264 picks a thread per core
        self._output = output
        self._stream = stream
        self.step = 1 / fps
        self.count = 0

    def write(self, picture: av.VideoFrame | Image.Image) -> None:
        """Encode the next frame; a picture of another size is scaled to the stream's."""
        frame = _to_frame(picture)
        frame.pts = self.count
        frame.time_base = self.step
        # Decoded frames carry their source picture type, which libx264 would obey.
        frame.pict_type = av.video.frame.PictureType.NONE
        self.count += 1
        self._output.mux(self._stream.encode(frame))

    def finish(self) -> None:
        """Drain the encoder."""
        self._output.mux(self._stream.encode(None))


def _to_frame(picture: av.VideoFrame | Image.Image) -> av.VideoFrame:
    if isinstance(picture, av.VideoFrame):
        return picture
    rgb = picture if picture.mode == "RGB" else picture.convert("RGB")
    return av.VideoFrame.from_image(rgb)


def _even(size: tuple[int, int]) -> tuple[int, int]:
    width, height = size
    return max(2, width - width % 2), max(2, height - height % 2)


class _Retimer:
    """Resamples frames to a constant output rate: output frame ``n`` shows the source
    frame current at source time ``n * step``, so frames are dropped or repeated."""

    def __init__(self, step: float | Fraction) -> None:
        self._step = float(step)
        self._index = 0
        self._held: av.VideoFrame | None = None
        self._held_at = 0.0

    def push(self, frame: av.VideoFrame, seconds: float | None) -> Iterator[av.VideoFrame]:
        """Take the next source frame; yields the output frames the previous one covers."""
        at = self._held_at + self._step if seconds is None else seconds
        if self._held is not None:
            yield from self._emit_until(at)
        self._held, self._held_at = frame, at

    def finish(self, frame_seconds: float | Fraction) -> Iterator[av.VideoFrame]:
        """The output frames the last source frame covers (it lasts ``frame_seconds``)."""
        if self._held is not None:
            yield from self._emit_until(self._held_at + float(frame_seconds))

    def _emit_until(self, seconds: float) -> Iterator[av.VideoFrame]:
        # A small tolerance so float clocks do not emit a frame twice at a boundary.
        while self._held is not None and self._index * self._step < seconds - 1e-6:
            self._index += 1
            yield self._held


def _write_all(
    video: _VideoOut, frames: Iterator[av.VideoFrame | Image.Image], meter: _Meter
) -> None:
    for frame in frames:
        video.write(frame)
        meter.step()


class _Meter:
    """Reports whole percentages of frames done, each once."""

    def __init__(self, total: int, report: Progress) -> None:
        self._total = max(total, 0)
        self._report = report
        self._done = 0
        self._last = -1

    def step(self) -> None:
        self._done += 1
        if self._total:
            percent = min(99, self._done * 100 // self._total)
            if percent != self._last:
                self._last = percent
                self._report(float(percent))

    def finish(self) -> None:
        self._report(100.0)


# --- Audio out ------------------------------------------------------------------------


class _AudioCopy:
    """Audio packets copied into the output unchanged, moved onto the output's clock."""

    def __init__(self, output: av.container.OutputContainer, src: _Source, window: _Window) -> None:
        assert src.audio is not None
        self._output = output
        self._stream = output.add_stream_from_template(src.audio)
        self._src = src
        self._window = window
        self.latest = -math.inf

    def feed(self, packet: av.Packet) -> None:
        """Copy ``packet`` when it starts inside the window, or is the one just before."""
        seconds = self._src.seconds(packet)
        if packet.pts is None or packet.dts is None or seconds is None or not packet.time_base:
            return
        self.latest = max(self.latest, seconds)
        # One packet of lead-in: AAC needs it to decode the first one (priming samples);
        # its timestamp goes negative and the MP4 edit list hides it.
        lead_in = float(packet.duration * packet.time_base) if packet.duration else 0.0
        if not self._window.start - lead_in <= seconds < self._window.end:
            return
        shift = round((self._window.start + self._src.origin) / packet.time_base)
        packet.pts -= shift
        packet.dts -= shift
        packet.stream = self._stream
        self._output.mux(packet)

    def finish(self) -> None:
        """Nothing is buffered."""


class _AudioEncode:
    """Audio decoded, cut to a window, time-stretched if asked, and encoded as AAC.
    Timestamps count samples, so clips appended one after another stay contiguous."""

    def __init__(
        self,
        output: av.container.OutputContainer,
        rate: int,
        layout: str,
        window: _Window | None = None,
        tempo: float = 1.0,
    ) -> None:
        stream = output.add_stream(_AUDIO_ENCODER, rate=rate)
        stream.layout = layout
        stream.codec_context.time_base = Fraction(1, rate)
        self._output = output
        self._stream = stream
        self._rate = rate
        self._layout = layout
        self._window = window or _Window()
        self._tempo = tempo
        self.samples = 0
        self.latest = -math.inf
        self._origin = 0.0
        self._input: av.audio.stream.AudioStream | None = None
        self._chain = _AudioChain(rate, layout, tempo)

    @classmethod
    def like(
        cls,
        output: av.container.OutputContainer,
        src: _Source,
        window: _Window | None = None,
        tempo: float = 1.0,
    ) -> _AudioEncode:
        """An encoder with the sample rate and channel layout of ``src``'s audio."""
        assert src.audio is not None
        encoder = cls(output, _rate(src.audio), _layout(src.audio), window, tempo)
        encoder.start(src)
        return encoder

    def start(self, src: _Source) -> None:
        """Take audio from ``src`` next (flushing what the previous clip left)."""
        self._encode(self._chain.flush())
        self._chain = _AudioChain(self._rate, self._layout, self._tempo)
        self._origin = src.origin
        self._input = src.audio

    def feed(self, packet: av.Packet) -> None:
        """Decode ``packet`` and encode the samples inside the window."""
        stream = self._input
        assert stream is not None, "start() names the clip the packets come from"
        for frame in _decoding(lambda: stream.decode(packet)):
            seconds = None if frame.time is None else frame.time - self._origin
            if seconds is not None:
                self.latest = max(self.latest, seconds)
                if not self._window.holds(seconds):
                    continue
            self._encode(self._chain.process(frame))

    def pad_to(self, seconds: float | Fraction) -> None:
        """Add silence until the track is ``seconds`` long (nothing if it already is)."""
        self._encode(self._chain.flush())
        missing = round(seconds * self._rate) - self.samples
        while missing > 0:
            count = min(missing, self._rate)
            self._encode([_silence(count, self._rate, self._layout)])
            missing -= count

    def finish(self) -> None:
        """Flush the filters and drain the encoder."""
        self._encode(self._chain.flush())
        self._output.mux(self._stream.encode(None))

    def _encode(self, frames: list[av.AudioFrame]) -> None:
        for frame in frames:
            frame.pts = self.samples
            frame.time_base = Fraction(1, self._rate)
            self.samples += frame.samples
            self._output.mux(self._stream.encode(frame))


class _AudioChain:
    """Decoded audio to the encoder's format: optional ``atempo`` stretch, then resampling."""

    def __init__(self, rate: int, layout: str, tempo: float) -> None:
        self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        self._tempo = tempo
        self._graph: av.filter.Graph | None = None

    def process(self, frame: av.AudioFrame) -> list[av.AudioFrame]:
        """Converted frames for ``frame`` (possibly none yet: filters buffer)."""
        stretched = self._stretch(frame) if self._tempo != 1.0 else [frame]
        return [out for piece in stretched for out in self._resampler.resample(piece)]

    def flush(self) -> list[av.AudioFrame]:
        """Whatever the filters still hold."""
        tail = self._stretch(None) if self._graph is not None else []
        frames = [out for piece in tail for out in self._resampler.resample(piece)]
        return frames + self._resampler.resample(None)

    def _stretch(self, frame: av.AudioFrame | None) -> list[av.AudioFrame]:
        if self._graph is None:
            assert frame is not None
            self._graph = _tempo_graph(frame, self._tempo)
        self._graph.push(frame)
        return _drain(self._graph)


def _tempo_graph(frame: av.AudioFrame, tempo: float) -> av.filter.Graph:
    graph = av.filter.Graph()
    time_base = frame.time_base or Fraction(1, frame.sample_rate)
    nodes = [
        graph.add(
            "abuffer",
            sample_rate=str(frame.sample_rate),
            sample_fmt=frame.format.name,
            channel_layout=frame.layout.name,
            time_base=str(time_base),
        )
    ]
    nodes += [graph.add("atempo", f"{step:.6f}") for step in _tempo_steps(tempo)]
    nodes.append(graph.add("abuffersink"))
    graph.link_nodes(*nodes).configure()
    return graph


def _tempo_steps(tempo: float) -> list[float]:
    """``atempo`` stages of 0.5-2.0 each (older FFmpeg refuses more), multiplying to ``tempo``."""
    steps: list[float] = []
    while tempo > 2.0:
        steps.append(2.0)
        tempo /= 2.0
    while tempo < 0.5:
        steps.append(0.5)
        tempo /= 0.5
    return [*steps, tempo]


def _drain(graph: av.filter.Graph) -> list[av.AudioFrame]:
    frames: list[av.AudioFrame] = []
    while True:
        try:
            frame = graph.pull()
        except (av.error.BlockingIOError, av.error.EOFError):
            return frames
        if isinstance(frame, av.AudioFrame):
            frames.append(frame)


def _silence(samples: int, rate: int, layout: str) -> av.AudioFrame:
    frame = av.AudioFrame(format="fltp", layout=layout, samples=samples)
    frame.sample_rate = rate
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    return frame


def _rate(stream: av.audio.stream.AudioStream) -> int:
    return stream.codec_context.sample_rate or 48_000


def _layout(stream: av.audio.stream.AudioStream) -> str:
    # AAC takes mono and stereo everywhere; wider layouts are folded to stereo.
    return "mono" if stream.codec_context.channels == 1 else "stereo"


_AudioOut = _AudioCopy | _AudioEncode


def _audio_out(
    output: av.container.OutputContainer, src: _Source, window: _Window
) -> _AudioOut | None:
    """Copy the audio when MP4 can hold its codec; otherwise re-encode it as AAC."""
    if src.audio is None:
        return None
    if src.audio.codec_context.name in output.supported_codecs:
        return _AudioCopy(output, src, window)
    return _AudioEncode.like(output, src, window)


def _concat_audio(
    output: av.container.OutputContainer, first: _Source, second: _Source
) -> _AudioEncode | None:
    template = first.audio or second.audio
    if template is None:
        return None
    return _AudioEncode(output, _rate(template), _layout(template))


def _finish(video: _VideoOut, audio: _AudioOut | None) -> None:
    video.finish()
    if audio is not None:
        audio.finish()


# --- Per-effect steps -----------------------------------------------------------------


def _segment_window(src: _Source, params: SegmentParams) -> _Window:
    if src.duration is not None and params.start >= src.duration:
        raise MediaError(
            f"the segment starts at {params.start:g} s but the clip lasts {src.duration:.3f} s"
        )
    end = math.inf if params.duration is None else params.start + params.duration
    return _Window(params.start, end)


def _segment_frames(src: _Source, window: _Window) -> int:
    end = min(window.end, src.duration or math.inf)
    return 0 if math.isinf(end) else round((end - window.start) * src.fps)


def _copy_window(
    src: _Source, window: _Window, video: _VideoOut, audio: _AudioOut | None, meter: _Meter
) -> None:
    """Write the frames and audio inside ``window``; stop reading once both are past it."""
    half_frame = 0.5 / float(src.fps)
    video_past = False
    with _reading(src) as items:
        for item in items:
            if isinstance(item, av.VideoFrame):
                at = src.seconds(item)
                # A frame belongs to the window its middle falls in.
                middle = (video.count / float(src.fps) if at is None else at) + half_frame
                video_past = middle >= window.end
                if window.holds(middle):
                    video.write(item)
                    meter.step()
            elif isinstance(item, av.Packet) and audio is not None:
                audio.feed(item)
            if video_past and (audio is None or audio.latest >= window.end):
                return


def _append_clip(
    src: _Source,
    fit: Callable[[av.VideoFrame], av.VideoFrame | Image.Image],
    video: _VideoOut,
    audio: _AudioEncode | None,
    meter: _Meter,
) -> None:
    """Append ``src`` to the output, fitted to its size and frame rate; the audio track
    is then padded with silence to the video's length so the next clip starts in sync."""
    if audio is not None:
        audio.start(src)
    retimer = _Retimer(step=video.step)
    with _reading(src) as items:
        for item in items:
            if isinstance(item, av.VideoFrame):
                fitted = (fit(f) for f in retimer.push(item, src.seconds(item)))
                _write_all(video, fitted, meter)
            elif isinstance(item, av.Packet) and audio is not None:
                audio.feed(item)
    _write_all(video, (fit(f) for f in retimer.finish(1 / src.fps)), meter)
    if audio is not None:
        audio.pad_to(video.count * video.step)


def _fit_to(size: tuple[int, int]) -> Callable[[av.VideoFrame], av.VideoFrame | Image.Image]:
    """Frames of another size are scaled to fit ``size``, letterboxed in black."""

    def fit(frame: av.VideoFrame) -> av.VideoFrame | Image.Image:
        if (frame.width, frame.height) == size:
            return frame
        return ImageOps.pad(_to_image(frame), size, Image.Resampling.BICUBIC, color=(0, 0, 0))

    return fit
