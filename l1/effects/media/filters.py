"""Per-frame video effects as libavfilter filter graphs.

A per-frame effect that libavfilter can do (grey, sepia, blur, negative, flips, quarter
turns, crops...) runs its frames through a filter graph in YUV, as the ``ffmpeg``
command line would: no conversion to RGB pictures and back unless the filter itself
works in RGB, and the filters' own slice threads on every core. Decoding (frame
threads, a helper thread) and encoding (libx264's frame threads) overlap it.

Video outputs carry the colour tags (matrix, range, primaries, transfer)
the filtered frames carry, which are the source's unless a filter changed them.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import av.error
import av.filter

from l1.effects.media.output import Meter, VideoWriter, finish
from l1.effects.media.pipeline import frames
from l1.effects.media.probe import MediaError, check_frame
from l1.effects.media.segments import (
    frames_of_part,
    open_render_output,
    open_render_source,
    part_length,
    use_threads,
)
from l1.effects.media.source import Source
from l1.effects.params import VideoEncoding
from l1.effects.registry import RenderContext

__all__ = ["FilterChain", "filter_frames", "output_size"]

# Every filtered frame leaves the graph as the encoder takes it, so the encoder never
# converts (and never scales) on its own.
_ENCODER_FORMAT = "yuv420p"


class FilterChain:
    """A libavfilter chain (``"hflip,hue=s=0"``: ``name=options`` steps joined by
    commas, no comma inside a step) applied to video frames one by one.

    The graph is built from the first frame (its size, pixel format and colour tags)
    and built again should a later frame differ in those, so a stream whose frames
    change size midway is still filtered rather than refused.
    """

    def __init__(
        self,
        description: str,
        time_base: Fraction,
        pix_fmt: str = _ENCODER_FORMAT,
        *,
        threads: int = 0,
    ) -> None:
        self._description = description
        self._threads = threads  # 0: libavfilter's choice, a thread per core
        self._time_base = time_base
        self._pix_fmt = pix_fmt
        self._graph: av.filter.Graph | None = None
        self._shape: tuple[object, ...] = ()

    def push(self, frame: av.VideoFrame) -> list[av.VideoFrame]:
        """The filtered frames ``frame`` gives (per-frame filters give exactly one)."""
        shape = _shape(frame)
        drained: list[av.VideoFrame] = []
        if self._graph is None or shape != self._shape:
            drained = self.flush()
            self._graph, self._shape = self._build(frame), shape
        assert self._graph is not None
        self._graph.push(frame)
        return drained + _drain(self._graph)

    def flush(self) -> list[av.VideoFrame]:
        """What the graph still holds, at the end of the stream."""
        graph, self._graph = self._graph, None
        if graph is None:
            return []
        graph.push(None)
        return _drain(graph)

    def _build(self, frame: av.VideoFrame) -> av.filter.Graph:
        graph = av.filter.Graph()
        graph.threads = self._threads
        source = graph.add(
            "buffer",
            width=str(frame.width),
            height=str(frame.height),
            pix_fmt=frame.format.name,
            time_base=str(frame.time_base or self._time_base),
            # The colour tags tell the filters that work in RGB which matrix and range
            # the YUV frames use, as the command line tells them.
            colorspace=str(int(frame.colorspace)),
            range=str(int(frame.color_range)),
        )
        nodes = [source]
        try:
            for step in self._description.split(","):
                name, _, args = step.partition("=")
                nodes.append(graph.add(name, args or None))
            nodes += [graph.add("format", self._pix_fmt), graph.add("buffersink")]
            graph.link_nodes(*nodes).configure()
        except (av.error.FFmpegError, ValueError) as error:
            raise MediaError(f"the video filter {self._description!r} failed: {error}") from None
        return graph


def _shape(frame: av.VideoFrame) -> tuple[object, ...]:
    return (frame.width, frame.height, frame.format.name, frame.colorspace, frame.color_range)


def _drain(graph: av.filter.Graph) -> list[av.VideoFrame]:
    frames: list[av.VideoFrame] = []
    while True:
        try:
            frame = graph.vpull()
        except (av.error.BlockingIOError, av.error.EOFError):
            return frames
        frames.append(frame)


def output_size(description: str, src: Source) -> tuple[int, int]:
    """The size of the frames ``description`` makes of ``src``'s, found by filtering
    one blank frame of the source's size and pixel format."""
    codec = src.picture.codec_context
    try:
        blank = av.VideoFrame(codec.width, codec.height, codec.pix_fmt or _ENCODER_FORMAT)
    except (ValueError, av.error.FFmpegError):
        # A format PyAV cannot allocate a frame of; the geometry is the same in yuv420p.
        blank = av.VideoFrame(codec.width, codec.height, _ENCODER_FORMAT)
    blank.time_base = src.picture.time_base or Fraction(1, 1)
    blank.pts = 0
    chain = FilterChain(description, blank.time_base)
    made = chain.push(blank) + chain.flush()
    if not made:
        raise MediaError(f"the video filter {description!r} gave no frame")
    return made[0].width, made[0].height


def filter_frames(
    source: Path, workdir: Path, description: str, encoding: VideoEncoding, context: RenderContext
) -> Path:
    """Run every frame of the video ``source`` (or of the part ``context.segment``)
    through the filter chain ``description``; the audio is carried over (a part has
    none). Returns the file written under ``workdir``."""
    with (
        open_render_source(source, context) as src,
        open_render_output(workdir, encoding, src, context) as output,
    ):
        size = output_size(description, src)
        check_frame(*size, context.limits, kind="output")
        video = output.video(size, src.fps)
        use_threads(video, context.threads)
        audio = output.audio(src)
        meter = Meter(part_length(src, context.segment), context.progress)
        fitted = _fitted(description, size, video)
        chain = FilterChain(fitted, src.time_base, video.pix_fmt, threads=context.threads)
        with frames(src, audio) as decoded:
            part = frames_of_part(src, decoded, context.segment)
            for frame in _filtered(chain, part):
                _write(video, src, frame, meter)
        for frame in chain.flush():
            _write(video, src, frame, meter)
        finish(video, audio)
    meter.finish()
    return output.path


def _write(video: VideoWriter, src: Source, frame: av.VideoFrame, meter: Meter) -> None:
    video.write(frame, src.seconds(frame))  # the first frame's colour tags become the stream's
    meter.step()


def _filtered(chain: FilterChain, decoded: Iterator[object]) -> Iterator[av.VideoFrame]:
    for frame in decoded:
        assert isinstance(frame, av.VideoFrame)
        yield from chain.push(frame)


def _fitted(description: str, size: tuple[int, int], video: VideoWriter) -> str:
    return _even_sized(description, size) if video.even else description


def _even_sized(description: str, size: tuple[int, int]) -> str:
    """``description`` cut to even width and height (yuv420p needs them): the last row
    or column goes, rather than scaling every pixel by a fraction of itself."""
    width, height = size
    if width % 2 == 0 and height % 2 == 0:
        return description
    return f"{description},crop={max(2, width - width % 2)}:{max(2, height - height % 2)}:0:0"
