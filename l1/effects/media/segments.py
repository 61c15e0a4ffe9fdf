"""Splitting a per-frame render of a long video by time: where the parts begin, and
how one part is read and written.

:func:`plan_segments` reads the timestamps of the video's packets (no decoding) and
cuts at frame boundaries: a short first part (a preview that is ready early), then
parts of about the same length. The cuts depend only on the video and the setting.

A part cut from the whole clip seeks to the key frame at or before its start and keeps
the frames whose middle falls in its span; a part of a later step in a chain takes
every frame of the same part of the step before. A part's frames are numbered on from
its first frame of the whole clip, so parts put end to end (:mod:`l1.effects.render.join`)
have continuous timestamps. Each part is its own closed encode, video only, in a
container that keeps every packet's presentation and decoding times exactly for the
stream copy of the join: QuickTime for H.264, HEVC and ProRes (Matroska and NUT lose
the decoding times of B-frames), MP4 for AV1, Matroska for VP9 and FFV1 (no B-frames).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Final, TypeVar

import av

from l1.effects.formats import CONTAINERS
from l1.effects.limits import MediaLimits
from l1.effects.media.output import Output, VideoWriter, open_output, output_target
from l1.effects.media.probe import MediaError, probe
from l1.effects.media.source import ALL, Source, Window, decoding, open_source
from l1.effects.media.video_out import VideoOut
from l1.effects.params import VideoEncoding
from l1.effects.registry import RenderContext
from l1.schemas import SegmentPlan, SegmentSpan

__all__ = [
    "PartOutput",
    "frames_of_part",
    "open_render_output",
    "open_render_source",
    "part_length",
    "plan_segments",
    "use_threads",
]

# The container of a part, by video codec: (muxer, suffix).
_PART_CONTAINERS: Final[dict[str, tuple[str, str]]] = {
    "h264": ("mov", ".mov"),
    "hevc": ("mov", ".mov"),
    "prores": ("mov", ".mov"),
    "av1": ("mp4", ".mp4"),
    "vp9": ("matroska", ".mkv"),
    "ffv1": ("matroska", ".mkv"),
}
_F = TypeVar("_F")
# Containers that store every frame's presentation time (AVI, for one, stores none:
# FFmpeg guesses, and a part could not tell its own frames).
_TIMED = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"})
_PREVIEW = 0.25  # the first part's length, as a share of the others'
_SHORTEST_LAST = 0.5  # a last part shorter than this share of the others joins the one before


def plan_segments(
    path: Path, encoding: VideoEncoding, seconds: float, limits: MediaLimits
) -> SegmentPlan | None:
    """The parts a per-frame render of the video ``path`` is split into, each about
    ``seconds`` long (the first a quarter of that); None when it is not worth splitting
    or cannot be: not a video, an animation, no longer than ``seconds``, or written as
    an animation. A file the render would refuse is left for the render to refuse."""
    if seconds <= 0:
        return None
    try:
        info = probe(path, limits)
        if info.kind != "video" or info.animated:
            return None
        with open_source(path, limits) as src:
            written = _format_codec(encoding, src)
            if src.animated or written is None or src.container.format.name not in _TIMED:
                return None
            return _plan(_frame_times(src, limits), src.fps, seconds, *written)
    except MediaError:
        return None


def _format_codec(encoding: VideoEncoding, src: Source) -> tuple[str, str] | None:
    """The video format and codec a render of ``src`` is written in, as
    :func:`~l1.effects.media.output.open_output` picks them; None for an animation."""
    try:
        target = output_target(Path(), encoding, src)
    except MediaError:
        return None
    if target.format not in CONTAINERS or target.codec is None:
        return None
    return target.format, target.codec


def _frame_times(src: Source, limits: MediaLimits) -> list[float]:
    """Clip seconds of every video frame, in order, from the packets alone. A video
    whose frames are not all timed (AVI's B-frames) is not split: a part could not
    tell its own frames."""
    video = src.picture
    packets = decoding(lambda: src.container.demux(video))
    stamps: list[int] = []
    while (packet := decoding(lambda: next(packets, None))) is not None:
        if packet.size == 0:
            continue  # the demuxer's empty packet at the end
        if packet.pts is None:
            raise MediaError("untimed frames")
        stamps.append(packet.pts)
        if len(stamps) > limits.max_frames:
            raise MediaError("too many frames")  # the render refuses it, with reasons
    base = src.time_base
    return [float(stamp * base) - src.origin for stamp in sorted(stamps)]


def _plan(
    times: list[float], fps: Fraction, seconds: float, fmt: str, codec: str
) -> SegmentPlan | None:
    if not times:
        return None
    half = 0.5 / float(fps)
    length = times[-1] + 2 * half
    if length <= seconds:
        return None
    # A part starts at a frame's time; a frame belongs to the part its middle falls in
    # (as the render of a part decides), so the counts agree whatever the spacing.
    middles = [at + half for at in times]
    cuts, starts = [0], [times[0]]
    boundary = seconds * _PREVIEW
    while boundary < length - seconds * _SHORTEST_LAST:
        first = bisect_left(times, boundary)
        if first < len(times):
            cut = bisect_left(middles, times[first])
            if cut > cuts[-1]:
                cuts.append(cut)
                starts.append(times[first])
        boundary += seconds
    if len(cuts) < 2:
        return None
    ends: list[float | None] = [*starts[1:], None]
    bounds = [*cuts, len(times)]
    segments = [
        SegmentSpan(
            of_node="",
            index=index,
            count=len(cuts),
            start=starts[index],
            end=ends[index],
            first_frame=bounds[index],
            frames=bounds[index + 1] - bounds[index],
        )
        for index in range(len(cuts))
    ]
    return SegmentPlan(format=fmt, codec=codec, frames=len(times), segments=segments)


# --- Rendering one part ---------------------------------------------------------------


@contextmanager
def open_render_source(path: Path, context: RenderContext) -> Iterator[Source]:
    """The video ``path`` opened for a render: with the context's threads and, for a
    part cut from the whole clip, moved to the key frame at or before its start."""
    span = context.segment
    part = span is not None and not span.from_source
    with open_source(path, context.limits, threads=context.threads, part=part) as src:
        if span is not None and span.from_source and span.index > 0:
            _seek_before(src, span.start)
        yield src


def _seek_before(src: Source, start: float) -> None:
    """Move to a key frame shown no later than ``start``. A demuxer seeks by decoding
    time, which runs ahead of the showing time where frames are reordered, so the
    landing is checked and the seek goes further back until it is early enough."""
    back = 0.0
    while True:
        target = max(0.0, start - back)
        _seek(src, target)
        if target == 0.0:
            return
        shown = _next_video_time(src)
        if shown is None or shown < start + 0.25 / float(src.fps):
            _seek(src, target)
            return
        back = max(1.0, 2 * back)


def _seek(src: Source, seconds: float) -> None:
    video = src.picture
    target = math.floor((seconds + src.origin) / src.time_base)
    decoding(lambda: src.container.seek(target, stream=video, backward=True))


def _next_video_time(src: Source) -> float | None:
    packets = decoding(lambda: src.container.demux(src.picture))
    while (packet := decoding(lambda: next(packets, None))) is not None:
        if packet.pts is not None:
            return src.seconds(packet)
    return None


def frames_of_part(src: Source, frames: Iterator[_F], span: SegmentSpan | None) -> Iterator[_F]:
    """The frames of ``frames`` that belong to ``span`` (all of them for the whole
    clip, or a part whose input is already that part): those whose middle falls in it."""
    if span is None or not span.from_source:
        yield from frames
        return
    half = 0.5 / float(src.fps)
    window = Window(span.start, math.inf if span.end is None else span.end)
    for frame in frames:
        assert isinstance(frame, av.VideoFrame)
        at = src.seconds(frame)
        middle = (span.start if at is None else at) + half
        if middle >= window.end:
            return
        if window.holds(middle):
            yield frame


def part_length(src: Source, span: SegmentSpan | None) -> int:
    """How many frames a render of ``src`` (or of ``span`` of it) writes."""
    return src.frames if span is None else span.frames


class PartOutput:
    """The file one part is written to: video only, numbered on from the part's first
    frame, in a container the join can copy from exactly."""

    def __init__(
        self,
        path: Path,
        container: av.container.OutputContainer,
        codec: str,
        encoding: VideoEncoding,
        span: SegmentSpan,
    ) -> None:
        self.path = path
        self._container = container
        self._codec = codec
        self._encoding = encoding
        self._span = span
        self._video: VideoOut | None = None

    def video(self, size: tuple[int, int], fps: Fraction) -> VideoOut:
        """The part's video stream, for pictures of ``size`` at ``fps``."""
        self._video = VideoOut(
            self._container,
            size,
            fps,
            self._codec,
            self._encoding,
            first=self._span.first_frame,
        )
        return self._video

    def audio(self, src: Source, window: Window = ALL) -> None:
        """No sound: the join takes the source's, once for the whole clip."""
        return None

    def check(self) -> None:
        """Refuse a part that did not write the frames its plan gave it: the parts
        would no longer line up."""
        written = 0 if self._video is None else self._video.count
        if written != self._span.frames:
            raise MediaError(
                f"the part holds {written} frames where the plan has {self._span.frames}"
            )


@contextmanager
def open_render_output(
    workdir: Path, encoding: VideoEncoding, src: Source, context: RenderContext
) -> Iterator[Output | PartOutput]:
    """The output of a render of ``src``: the whole file the format rules give, or,
    for a part of a split render, the part's own file."""
    span = context.segment
    if span is None:
        with open_output(workdir, encoding, src) as output:
            yield output
        return
    written = _format_codec(encoding, src)
    if written is None:
        raise MediaError("a part of a split render is written as video, not an animation")
    codec = written[1]
    muxer, suffix = _PART_CONTAINERS[codec]
    path = workdir / f"part{suffix}"
    options = {"movie_timescale": str(_timescale(src.fps))} if muxer in ("mov", "mp4") else {}
    with av.open(str(path), "w", format=muxer, options=options) as container:
        part = PartOutput(path, container, codec, encoding, span)
        yield part
        part.check()


def _timescale(fps: Fraction) -> int:
    """The clock QuickTime gives a video track at ``fps`` (a multiple of the rate's
    numerator, at least 10000). The movie's clock, which times the edit that starts a
    part late, is set to it too: at its default of 1000 a part starting at frame 8 of
    a 29.97 fps clip would start at 0.266 s rather than 8008/30000 s."""
    scale = fps.numerator
    while scale < 10_000:
        scale *= 2
    return scale


def use_threads(video: VideoWriter, threads: int) -> None:
    """Have the encoder of ``video`` use ``threads`` threads (0: one per core)."""
    if isinstance(video, VideoOut):
        video.use_threads(threads)
