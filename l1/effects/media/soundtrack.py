"""The sound of an output: packets copied into a container that takes their codec, or
decoded, cut, optionally time-stretched (FFmpeg's ``atempo``, pitch kept) and encoded
once as the container's own (AAC, or Opus)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Final, cast

import av
import av.error

from l1.effects.media.soundfilters import AudioChain, silence
from l1.effects.media.source import ALL, Source, Window, decoding
from l1.effects.registry import MediaError

__all__ = ["AudioEncode", "AudioOut", "PacketCopy"]


class PacketCopy:
    """Packets of one input stream copied unchanged into the output, cut to ``window``
    of the source's clock and moved onto the output's (which starts at the window's
    start)."""

    def __init__(
        self,
        output: av.container.OutputContainer,
        template: av.stream.Stream,
        src: Source,
        window: Window = ALL,
    ) -> None:
        self._output = output
        # Opaque: the stream's parameters as they are, whatever decoder read them
        # (libdav1d, say, which is no encoder).
        self._stream = output.add_stream_from_template(template, opaque=True)
        self._origin = src.origin
        self._window = window
        self.latest = -math.inf

    def feed(self, packet: av.Packet) -> None:
        """Copy ``packet`` when it starts inside the window, or is the one just before."""
        if not packet.time_base:
            return
        if packet.pts is not None:
            seconds = float(packet.pts * packet.time_base) - self._origin
            self.latest = max(self.latest, seconds)
            # One packet of lead-in: AAC needs it to decode the first one (priming
            # samples); its timestamp goes negative and the MP4 edit list hides it.
            lead_in = float(packet.duration * packet.time_base) if packet.duration else 0.0
            if not self._window.start - lead_in <= seconds < self._window.end:
                return
        elif self._window != ALL:
            return  # a packet without a time cannot be placed in a window
        shift = round((self._window.start + self._origin) / packet.time_base)
        if packet.pts is not None:
            packet.pts -= shift
        if packet.dts is not None:
            packet.dts -= shift
        packet.stream = self._stream
        self._output.mux(packet)

    def finish(self) -> None:
        """Nothing is buffered."""


class AudioEncode:
    """Audio decoded, cut to a window, time-stretched if asked, and encoded (``encoder``:
    AAC, or Opus) with the rate and layout of ``template``'s sound. Timestamps count
    samples, so clips appended one after another stay contiguous."""

    def __init__(
        self,
        output: av.container.OutputContainer,
        encoder: str,
        template: av.audio.stream.AudioStream,
        window: Window | None = None,
        tempo: float = 1.0,
    ) -> None:
        rate, layout = _rate(template, encoder), _layout(template)
        stream = cast("av.audio.stream.AudioStream", output.add_stream(encoder, rate=rate))
        stream.layout = layout
        stream.codec_context.time_base = Fraction(1, rate)
        self._output = output
        self._stream = stream
        self._rate = rate
        self._layout = layout
        self._format = _sample_format(encoder)
        self._window = window or Window()
        self._tempo = tempo
        self.samples = 0
        self.latest = -math.inf
        self._origin = 0.0
        self._input: av.audio.stream.AudioStream | None = None
        self._chain = self._new_chain()

    def _new_chain(self) -> AudioChain:
        return AudioChain(self._rate, self._layout, self._tempo, self._format)

    def start(self, src: Source) -> None:
        """Take audio from ``src`` next (flushing what the previous clip left)."""
        self._drain_decoder()
        self._encode(self._chain.flush())
        self._chain = self._new_chain()
        self._origin = src.origin
        self._input = src.audio

    def feed(self, packet: av.Packet) -> None:
        """Decode ``packet`` and encode the samples inside the window."""
        stream = self._input
        if stream is not None:  # None: a clip without sound, in a joined track
            self._take(decoding(lambda: stream.decode(packet)))

    def _take(self, frames: Sequence[av.AudioFrame]) -> None:
        for frame in frames:
            seconds = None if frame.time is None else frame.time - self._origin
            if seconds is not None:
                self.latest = max(self.latest, seconds)
                if not self._window.holds(seconds):
                    continue
            self._encode(self._chain.process(frame))

    def pad_to(self, seconds: float | Fraction) -> None:
        """Add silence until the track is ``seconds`` long (nothing if it already is)."""
        self._drain_decoder()
        self._encode(self._chain.flush())
        self._chain = self._new_chain()
        missing = round(seconds * self._rate) - self.samples
        while missing > 0:
            count = min(missing, self._rate)
            self._encode([silence(count, self._rate, self._layout, self._format)])
            missing -= count

    def finish(self) -> None:
        """Drain the decoder, the filters and the encoder."""
        self._drain_decoder()
        self._encode(self._chain.flush())
        self._output.mux(self._stream.encode(None))

    def _drain_decoder(self) -> None:
        stream, self._input = self._input, None
        if stream is None:
            return
        try:
            self._take(stream.decode(None))
        except av.error.EOFError:
            pass  # the demuxer's last (empty) packet flushed the decoder already
        except av.error.FFmpegError as error:
            raise MediaError(f"the audio could not be decoded: {error}") from None

    def _encode(self, frames: list[av.AudioFrame]) -> None:
        for frame in frames:
            frame.pts = self.samples
            frame.time_base = Fraction(1, self._rate)
            self.samples += frame.samples
            self._output.mux(self._stream.encode(frame))


# Opus is coded at 48 kHz (or a few lower rates); other rates are resampled to it.
_OPUS_RATES: Final = frozenset({48_000, 24_000, 16_000, 12_000, 8_000})


def _rate(stream: av.audio.stream.AudioStream, encoder: str) -> int:
    rate = stream.codec_context.sample_rate or 48_000
    if encoder == "libopus" and rate not in _OPUS_RATES:
        return 48_000
    return rate


def _layout(stream: av.audio.stream.AudioStream) -> str:
    # Mono and stereo play everywhere; wider layouts are folded to stereo.
    return "mono" if stream.codec_context.channels == 1 else "stereo"


def _sample_format(encoder: str) -> str:
    # The first sample format the encoder takes (AAC: planar float; Opus: packed float).
    formats = av.codec.Codec(encoder, "w").audio_formats or ()
    names = [f.name for f in formats]
    return "flt" if "flt" in names else (names[0] if names else "fltp")


AudioOut = PacketCopy | AudioEncode
