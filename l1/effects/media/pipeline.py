"""The frame loop every video effect shares, and the per-frame pipeline on top of it.

:func:`frames` reads a source ahead in a thread and yields its video frames in order,
handing each audio packet to the output's audio on the way; an effect transforms the
frames and writes them to a :class:`~l1.effects.media.output.VideoOut`.
:func:`map_frames` transforms several pictures at once, one per core, since Pillow lets
go of the interpreter while it works on pixels.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image

from l1.effects.media.output import (
    Meter,
    VideoWriter,
    finish,
)
from l1.effects.media.probe import check_frame
from l1.effects.media.segments import (
    frames_of_part,
    open_render_output,
    open_render_source,
    part_length,
    use_threads,
)
from l1.effects.media.soundtrack import AudioOut
from l1.effects.media.source import Source, reading, to_image
from l1.effects.params import VideoEncoding
from l1.effects.registry import RenderContext

__all__ = ["Frame", "Retimer", "frames", "map_frames", "write_all"]

Frame = av.VideoFrame | Image.Image


@contextmanager
def frames(
    src: Source, audio: AudioOut | None = None, *, pictures: bool = False
) -> Iterator[Iterator[Frame]]:
    """The video frames of ``src`` (as RGB pictures with ``pictures``), in order; its
    audio packets go to ``audio`` as they come. Reading stops when the block ends."""
    with reading(src, pictures=pictures) as items:
        yield _video_only(items, audio)


def _video_only(items: Iterator[Frame | av.Packet], audio: AudioOut | None) -> Iterator[Frame]:
    for item in items:
        if isinstance(item, av.Packet):
            if audio is not None:
                audio.feed(item)
        else:
            yield item


def map_frames(
    source: Path,
    workdir: Path,
    transform: Callable[[Image.Image], Image.Image],
    encoding: VideoEncoding,
    context: RenderContext,
) -> Path:
    """Apply ``transform`` to every frame of the video ``source`` (or of the part
    ``context.segment``), on as many frames at once as there are cores (or the
    context's threads), writing them in order; the audio is carried over (a part has
    none). Returns the file written under ``workdir``."""
    with (
        open_render_source(source, context) as src,
        open_render_output(workdir, encoding, src, context) as output,
    ):
        # The output size is fixed before the first packet is written.
        size = transform(Image.new("RGB", src.size)).size
        check_frame(*size, context.limits, kind="output")
        video = output.video(size, src.fps)
        use_threads(video, context.threads)
        video.tag_like(src.picture.codec_context)
        audio = output.audio(src)
        meter = Meter(part_length(src, context.segment), context.progress)
        workers = context.threads or os.cpu_count() or 1
        with frames(src, audio) as decoded:
            part = frames_of_part(src, decoded, context.segment)
            _transform_in_order(src, part, transform, video, meter, workers)
        finish(video, audio)
    meter.finish()
    return output.path


def _transform_in_order(
    src: Source,
    decoded: Iterator[Frame],
    transform: Callable[[Image.Image], Image.Image],
    video: VideoWriter,
    meter: Meter,
    workers: int,
) -> None:
    """Transform the ``decoded`` frames in a pool of ``workers`` threads and write the
    results in order, each at its frame's time; at most one frame per thread waits, so
    memory stays flat. The first error raised by ``transform`` is raised here, after
    the frames in flight are done."""

    def change(frame: av.VideoFrame) -> Image.Image:
        return transform(to_image(frame))

    with ThreadPoolExecutor(workers, thread_name_prefix="l1-frame") as pool:
        pending: deque[tuple[Future[Image.Image], float | None]] = deque()
        for frame in decoded:
            assert isinstance(frame, av.VideoFrame)
            pending.append((pool.submit(change, frame), src.seconds(frame)))
            if len(pending) > workers:
                _write_next(pending, video, meter)
        while pending:
            _write_next(pending, video, meter)


def _write_next(
    pending: deque[tuple[Future[Image.Image], float | None]], video: VideoWriter, meter: Meter
) -> None:
    picture, at = pending.popleft()
    video.write(picture.result(), at)
    meter.step()


def write_all(video: VideoWriter, pictures: Iterator[Frame], meter: Meter) -> None:
    """Encode every picture of ``pictures``, counting each."""
    for picture in pictures:
        video.write(picture)
        meter.step()


class Retimer:
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
