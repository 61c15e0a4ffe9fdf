"""``mux``: the sound of one file under the pictures of another.

The first input's video stream is copied (re-encoded only when MP4 cannot hold its
codec); the second input's audio (a video with sound, or an audio file) is copied when
MP4 can hold its codec and re-encoded as AAC otherwise, cut where the video ends.
Packets of the two files are interleaved by time, so neither is read far ahead.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import av

from l1.effects.media.output import (
    OUTPUT_NAME,
    AudioEncode,
    Meter,
    PacketCopy,
    VideoOut,
    open_target,
)
from l1.effects.media.probe import MediaError, MediaInfo, probe
from l1.effects.media.source import Source, Window, decoding, open_sound, open_source
from l1.effects.params import MuxParams, VideoEncoding
from l1.effects.registry import RenderContext

__all__ = ["mux"]


def mux(inputs: Sequence[Path], workdir: Path, params: MuxParams, context: RenderContext) -> Path:
    """The first input's video with the second input's audio, cut to the video's length."""
    _require_mux_inputs(probe(inputs[0], context.limits), probe(inputs[1], context.limits))
    target = workdir / OUTPUT_NAME
    with (
        open_source(inputs[0], context.limits) as src,
        open_sound(inputs[1], context.limits) as sound,
        open_target(target) as output,
    ):
        end = _video_end(src)
        picture = _picture_out(output, src, params.encoding)
        audio = _sound_out(output, sound, end)
        meter = Meter(src.frames, context.progress)
        for track, packet in _interleaved(_video_packets(src), _audio_packets(sound, end)):
            if track == "video":
                picture.feed(packet)
                meter.step()
            else:
                audio.feed(packet)
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
    """Video packets decoded and re-encoded as H.264."""

    def __init__(
        self, output: av.container.OutputContainer, src: Source, encoding: VideoEncoding
    ) -> None:
        self._stream = src.picture
        self._out = VideoOut(output, src.size, src.fps, encoding)

    def feed(self, packet: av.Packet) -> None:
        for frame in decoding(lambda: self._stream.decode(packet)):
            self._out.write(frame)

    def finish(self) -> None:
        """Drain the decoder, then the encoder."""
        for frame in decoding(lambda: self._stream.decode(None)):
            self._out.write(frame)
        self._out.finish()


def _picture_out(
    output: av.container.OutputContainer, src: Source, encoding: VideoEncoding
) -> PacketCopy | _PictureEncode:
    """Copy the video when MP4 can hold its codec; otherwise re-encode it as H.264."""
    if src.picture.codec_context.name in output.supported_codecs:
        return PacketCopy(output, src.picture, src)
    return _PictureEncode(output, src, encoding)


def _sound_out(
    output: av.container.OutputContainer, sound: Source, end: float
) -> PacketCopy | AudioEncode:
    """Copy the audio when MP4 can hold its codec; otherwise re-encode it as AAC."""
    assert sound.audio is not None
    if sound.audio.codec_context.name in output.supported_codecs:
        return PacketCopy(output, sound.audio, sound)
    return AudioEncode.like(output, sound, Window(0.0, end))
