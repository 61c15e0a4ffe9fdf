"""The file a render writes: its format and video codec as the rules pick them
(:mod:`l1.effects.formats`), the video writer and the sound that go into it.

The video is written by :class:`~l1.effects.media.video_out.VideoOut` (PyAV) or, for
GIF and WebP, by :class:`~l1.effects.media.animation.AnimationOut` (Pillow); the sound
is copied or encoded once (:mod:`l1.effects.media.soundtrack`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av

from l1.effects.formats import ANIMATED, CONTAINERS, Format, VideoCodec, video_format_for
from l1.effects.media.animation import AnimationOut
from l1.effects.media.soundtrack import AudioEncode, AudioOut, PacketCopy
from l1.effects.media.source import ALL, Source, Window, codec_name
from l1.effects.media.video_out import VideoOut
from l1.effects.params import VideoEncoding
from l1.effects.registry import MediaError, Progress

__all__ = [
    "Meter",
    "Output",
    "Target",
    "VideoWriter",
    "finish",
    "open_output",
    "output_target",
]

VideoWriter = VideoOut | AnimationOut
"""What a render writes its frames to: a video stream, or an animation Pillow writes."""


class Target(NamedTuple):
    """The file a render writes: where, in which format, with which video codec (None
    for the formats Pillow writes)."""

    path: Path
    format: Format
    codec: VideoCodec | None


def output_target(workdir: Path, encoding: VideoEncoding, src: Source) -> Target:
    """Where and how a render of ``src`` is written: the format asked for, or the one
    the rules give the input (:func:`~l1.effects.formats.default_format`)."""
    name = encoding.format or video_format_for(src.default_format, encoding.codec)
    container = CONTAINERS.get(name)
    if container is None and name not in ANIMATED:
        raise MediaError(
            f"{name} holds one picture, but the input is a moving picture: "
            "ask for gif or webp to keep it moving, or for a video format"
        )
    codec = encoding.codec or (container.codecs[0] if container else None)
    suffix = container.suffix if container else f".{name}"
    return Target(workdir / f"output{suffix}", name, codec)


@contextmanager
def open_output(workdir: Path, encoding: VideoEncoding, src: Source) -> Iterator[Output]:
    """The output file of a render of ``src`` under ``workdir``, open for writing in the
    format ``encoding`` asks for, or the one the rules give the input."""
    target = output_target(workdir, encoding, src)
    container = CONTAINERS.get(target.format)
    if container is None:
        yield Output(target, encoding, src, None)
        return
    # faststart puts the MP4 index first, so players can start before the download ends.
    options = {"movflags": "+faststart"} if container.muxer in ("mp4", "mov") else {}
    path = str(target.path)
    with av.open(path, "w", format=container.muxer, options=options) as output:
        yield Output(target, encoding, src, output)


class Output:
    """An open output: makes its video writer and its sound as the format rules say."""

    def __init__(
        self,
        target: Target,
        encoding: VideoEncoding,
        src: Source,
        container: av.container.OutputContainer | None,
    ) -> None:
        self.target = target
        self._encoding = encoding
        self._src = src
        self._container = container

    @property
    def path(self) -> Path:
        """The file being written."""
        return self.target.path

    def video(self, size: tuple[int, int], fps: Fraction) -> VideoWriter:
        """The video writer, for pictures of ``size`` at ``fps`` (an animation's frames
        keep their own times)."""
        timed = self._src.animated
        if self._container is None:
            # A clip made an animation loops for ever, as the web shows them.
            loop = self._src.loop if timed else 0
            lossless = self._encoding.crf == 0
            return AnimationOut(self.path, self.target.format, fps, loop, lossless)
        assert self.target.codec is not None
        return VideoOut(
            self._container,
            size,
            fps,
            self.target.codec,
            self._encoding,
            time_base=self._src.time_base if timed else None,
        )

    def audio(self, src: Source, window: Window = ALL) -> AudioOut | None:
        """The sound of ``src`` inside ``window``: copied when the container takes its
        codec, else encoded as the container's own (None without sound, or for formats
        that hold none)."""
        if src.audio is None or self._container is None:
            return None
        if codec_name(src.audio) in self._takes_audio():
            return PacketCopy(self._container, src.audio, src, window)
        return self.encoded_audio(src, window)

    def encoded_audio(
        self, src: Source, window: Window | None = None, tempo: float = 1.0
    ) -> AudioEncode | None:
        """The sound of ``src`` decoded and encoded, optionally time-stretched."""
        if src.audio is None or self._container is None:
            return None
        encoder = AudioEncode(self._container, self._audio_encoder(), src.audio, window, tempo)
        encoder.start(src)
        return encoder

    def joined_audio(self, sources: Sequence[Source]) -> AudioEncode | None:
        """One encoder for the sound of clips played one after another, with the first
        sound's rate and layout (None when none of them has any)."""
        template = next((src.audio for src in sources if src.audio is not None), None)
        if template is None or self._container is None:
            return None
        return AudioEncode(self._container, self._audio_encoder(), template)

    def copies(self, codec: str) -> bool:
        """True when the container takes video coded as ``codec`` as it is."""
        return self._container is not None and codec in CONTAINERS[self.target.format].codecs

    def copy(self, template: av.stream.Stream, src: Source, window: Window = ALL) -> PacketCopy:
        """Packets of ``template`` (a stream of ``src``) copied into the output."""
        assert self._container is not None
        return PacketCopy(self._container, template, src, window)

    def _takes_audio(self) -> frozenset[str]:
        return CONTAINERS[self.target.format].audio_copy

    def _audio_encoder(self) -> str:
        return CONTAINERS[self.target.format].audio_encoder


class Meter:
    """Reports whole percentages of frames done, each once."""

    def __init__(self, total: int, report: Progress) -> None:
        self._total = max(total, 0)
        self._report = report
        self._done = 0
        self._last = -1

    def step(self) -> None:
        """One more frame done."""
        self._done += 1
        if self._total:
            percent = min(99, self._done * 100 // self._total)
            if percent != self._last:
                self._last = percent
                self._report(float(percent))

    def finish(self) -> None:
        """All done."""
        self._report(100.0)


def finish(video: VideoWriter, audio: AudioOut | None) -> None:
    """Drain the video encoder, then the audio."""
    video.finish()
    if audio is not None:
        audio.finish()
