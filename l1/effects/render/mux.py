"""``mux``: the sound of one file under the pictures of another.

The output is written in the first input's format (see :mod:`l1.effects.formats`) or
the one asked for. The first input's video stream is copied (encoded only when the
container cannot hold its codec, or another codec is asked for); the second input's
audio (a video with sound, or an audio file) is copied when the container takes its
codec and encoded otherwise, cut where the video ends.
Packets of the two files are interleaved by time, so neither is read far ahead.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import av
import msgspec

from l1.effects.formats import ANIMATED, VideoCodec, video_format_for
from l1.effects.media.output import (
    Meter,
    Output,
    VideoWriter,
    open_output,
)
from l1.effects.media.probe import MediaError, MediaInfo, probe
from l1.effects.media.soundtrack import AudioOut, PacketCopy
from l1.effects.media.source import (
    Source,
    Window,
    codec_name,
    decoding,
    open_sound,
    open_source,
)
from l1.effects.params import MuxParams, VideoEncoding
from l1.effects.registry import RenderContext

__all__ = ["mux"]


def mux(inputs: Sequence[Path], workdir: Path, params: MuxParams, context: RenderContext) -> Path:
    """The first input's video with the second input's audio, cut to the video's length."""
    _require_mux_inputs(probe(inputs[0], context.limits), probe(inputs[1], context.limits))
    with (
        open_source(inputs[0], context.limits) as src,
        open_sound(inputs[1], context.limits) as sound,
    ):
        encoding = _with_sound(params.encoding, src)
        with open_output(workdir, encoding, src) as output:
            if output.target.codec is None:
                raise MediaError(f"mux writes sound, which {output.target.format} cannot hold")
            end = _video_end(src)
            picture = _picture_out(output, src, encoding.codec)
            audio = output.audio(sound, Window(0.0, end))
            assert audio is not None  # the second input has sound: checked above
            meter = Meter(src.frames, context.progress)
            _interleave(src, sound, end, picture, audio, meter)
    meter.finish()
    return output.path


def _interleave(
    src: Source,
    sound: Source,
    end: float,
    picture: PacketCopy | _PictureEncode,
    audio: AudioOut,
    meter: Meter,
) -> None:
    for track, packet in _interleaved(_video_packets(src), _audio_packets(sound, end)):
        if track == "video":
            picture.feed(packet)
            meter.step()
        else:
            audio.feed(packet)
    picture.finish()
    audio.finish()


def _with_sound(encoding: VideoEncoding, src: Source) -> VideoEncoding:
    """``encoding``, with an animation's own format (which holds no sound) made MP4."""
    if encoding.format is not None or src.default_format not in ANIMATED:
        return encoding
    return msgspec.structs.replace(encoding, format=video_format_for("mp4", encoding.codec))


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


def _video_end(src: Source) -> float:
    """Where the video ends, in seconds of clip time (infinite when nothing says)."""
    if src.duration:
        return src.duration
    return src.frames / float(src.fps) if src.frames else math.inf


_Tagged = tuple[str, av.Packet]


def _video_packets(src: Source) -> Iterator[tuple[float, _Tagged]]:
    """The first input's video packets, keyed by decoding time."""
    packets = decoding(lambda: src.container.demux(src.picture))
    while (packet := decoding(lambda: next(packets, None))) is not None:
        if packet.size and packet.time_base is not None:
            stamp = packet.dts if packet.dts is not None else packet.pts
            key = -math.inf if stamp is None else float(stamp * packet.time_base)
            yield key - src.origin, ("video", packet)


def _audio_packets(sound: Source, end: float) -> Iterator[tuple[float, _Tagged]]:
    """The second input's audio packets from its start (one packet of lead-in kept, for
    codecs that prime their decoder with it) until ``end`` seconds."""
    assert sound.audio is not None
    packets = decoding(lambda: sound.container.demux(sound.audio))
    while (packet := decoding(lambda: next(packets, None))) is not None:
        seconds = sound.seconds(packet)
        if not packet.size or seconds is None or packet.time_base is None:
            continue
        if seconds >= end:
            return
        lead_in = float(packet.duration * packet.time_base) if packet.duration else 0.0
        if seconds >= -lead_in:
            yield seconds, ("audio", packet)


def _interleaved(*tracks: Iterator[tuple[float, _Tagged]]) -> Iterator[_Tagged]:
    """The packets of all ``tracks`` in time order, each track read only as far as needed."""
    for _key, tagged in heapq.merge(*tracks, key=lambda keyed: keyed[0]):
        yield tagged


class _PictureEncode:
    """Video packets decoded and encoded again."""

    def __init__(self, src: Source, video: VideoWriter) -> None:
        self._src = src
        self._out = video

    def feed(self, packet: av.Packet) -> None:
        stream = self._src.picture
        for frame in decoding(lambda: stream.decode(packet)):
            self._out.write(frame, self._src.seconds(frame))

    def finish(self) -> None:
        """Drain the decoder, then the encoder."""
        stream = self._src.picture
        for frame in decoding(lambda: stream.decode(None)):
            self._out.write(frame, self._src.seconds(frame))
        self._out.finish()


def _picture_out(
    output: Output, src: Source, codec: VideoCodec | None
) -> PacketCopy | _PictureEncode:
    """Copy the video when the container holds its codec (and no other is asked for);
    otherwise encode it as the container's own."""
    name = codec_name(src.picture)
    if output.copies(name) and codec in (None, name):
        return output.copy(src.picture, src)
    return _PictureEncode(src, output.video(src.size, src.fps))
