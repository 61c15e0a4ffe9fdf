"""The video-only effects: ``segment``, ``speed`` and ``concatenate``.

Outputs are written as the format rules say (:mod:`l1.effects.formats`; the first
clip's for ``concatenate``). Audio: ``segment`` copies the audio packets of its window
unchanged when the container takes the codec, otherwise encodes them; ``speed``
time-stretches the audio (pitch kept) and ``concatenate`` encodes both clips' audio as
one track.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import av
from PIL import Image, ImageOps

from l1.effects.media.output import (
    Meter,
    VideoWriter,
    finish,
    open_output,
)
from l1.effects.media.pipeline import Frame, Retimer, frames, write_all
from l1.effects.media.probe import MediaError
from l1.effects.media.soundtrack import AudioEncode, AudioOut
from l1.effects.media.source import Source, Window, open_source, to_image
from l1.effects.params import ConcatenateParams, SegmentParams, SpeedParams
from l1.effects.registry import RenderContext

__all__ = ["concatenate", "segment", "speed"]


def segment(
    inputs: Sequence[Path], workdir: Path, params: SegmentParams, context: RenderContext
) -> Path:
    """The part of the clip from ``params.start`` lasting ``params.duration`` seconds."""
    with open_source(inputs[0], context.limits) as src:
        window = _segment_window(src, params)
        src.seek(window.start)
        with open_output(workdir, params.encoding, src) as output:
            video = output.video(src.size, src.fps)
            audio = output.audio(src, window)
            meter = Meter(_segment_frames(src, window), context.progress)
            _copy_window(src, window, video, audio, meter)
            if video.count == 0:
                raise MediaError(f"the segment from {window.start:g} s holds no video frames")
            finish(video, audio)
    meter.finish()
    return output.path


def speed(
    inputs: Sequence[Path], workdir: Path, params: SpeedParams, context: RenderContext
) -> Path:
    """The clip played ``params.factor`` times faster at the same frame rate; the audio
    is time-stretched to match (its pitch is kept)."""
    with (
        open_source(inputs[0], context.limits) as src,
        open_output(workdir, params.encoding, src) as output,
    ):
        video = output.video(src.size, src.fps)
        audio = output.encoded_audio(src, tempo=params.factor)
        meter = Meter(round(src.frames / params.factor), context.progress)
        retimer = Retimer(step=params.factor / src.fps)
        with frames(src, audio) as pictures:
            for frame in pictures:
                assert isinstance(frame, av.VideoFrame)
                write_all(video, retimer.push(frame, src.seconds(frame)), meter)
        write_all(video, retimer.finish(1 / src.fps), meter)
        finish(video, audio)
    meter.finish()
    return output.path


def concatenate(
    inputs: Sequence[Path], workdir: Path, params: ConcatenateParams, context: RenderContext
) -> Path:
    """The first clip then the second, at the first clip's size and frame rate (the
    second is scaled to fit, letterboxed in black). Audio is encoded as one track; a
    clip without audio contributes silence when the other has some."""
    with (
        open_source(inputs[0], context.limits) as first,
        open_source(inputs[1], context.limits) as second,
        open_output(workdir, params.encoding, first) as output,
    ):
        video = output.video(first.size, first.fps)
        audio = output.joined_audio([first, second])
        total = first.frames + round(second.frames * first.fps / second.fps)
        meter = Meter(total, context.progress)
        fit = _fit_to(first.size)
        for src in (first, second):
            _append_clip(src, fit, video, audio, meter)
        finish(video, audio)
    meter.finish()
    return output.path


def _segment_window(src: Source, params: SegmentParams) -> Window:
    if src.duration is not None and params.start >= src.duration:
        raise MediaError(
            f"the segment starts at {params.start:g} s but the clip lasts {src.duration:.3f} s"
        )
    end = math.inf if params.duration is None else params.start + params.duration
    return Window(params.start, end)


def _segment_frames(src: Source, window: Window) -> int:
    end = min(window.end, src.duration or math.inf)
    return 0 if math.isinf(end) else round((end - window.start) * src.fps)


def _copy_window(
    src: Source, window: Window, video: VideoWriter, audio: AudioOut | None, meter: Meter
) -> None:
    """Write the frames and audio inside ``window``; stop reading once both are past it."""
    half_frame = 0.5 / float(src.fps)
    with frames(src, audio) as pictures:
        for frame in pictures:
            assert isinstance(frame, av.VideoFrame)
            at = src.seconds(frame)
            # A frame belongs to the window its middle falls in.
            middle = (video.count / float(src.fps) if at is None else at) + half_frame
            if window.holds(middle):
                video.write(frame, at)
                meter.step()
            if middle >= window.end and (audio is None or audio.latest >= window.end):
                return


def _append_clip(
    src: Source,
    fit: Callable[[av.VideoFrame], Frame],
    video: VideoWriter,
    audio: AudioEncode | None,
    meter: Meter,
) -> None:
    """Append ``src`` to the output, fitted to its size and frame rate; the audio track
    is then padded with silence to the video's length so the next clip starts in sync."""
    if audio is not None:
        audio.start(src)
    retimer = Retimer(step=video.step)
    with frames(src, audio) as pictures:
        for frame in pictures:
            assert isinstance(frame, av.VideoFrame)
            write_all(video, (fit(f) for f in retimer.push(frame, src.seconds(frame))), meter)
    write_all(video, (fit(f) for f in retimer.finish(1 / src.fps)), meter)
    if audio is not None:
        audio.pad_to(video.count * video.step)


def _fit_to(size: tuple[int, int]) -> Callable[[av.VideoFrame], Frame]:
    """Frames of another size are scaled to fit ``size``, letterboxed in black."""

    def fit(frame: av.VideoFrame) -> Frame:
        if (frame.width, frame.height) == size:
            return frame
        return ImageOps.pad(to_image(frame), size, Image.Resampling.BICUBIC, color=(0, 0, 0))

    return fit
