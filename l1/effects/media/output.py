"""Writing clips with PyAV: H.264 video and AAC (or copied) audio in MP4.

Output is H.264 (``libx264``, yuv420p) in MP4 at a constant frame rate. yuv420p needs
even dimensions, so an odd width or height is rounded down by one pixel. Audio is
copied packet for packet when MP4 can hold its codec (AAC, MP3, Opus...), otherwise
decoded, cut, optionally time-stretched (FFmpeg's ``atempo``, pitch kept) and encoded
as AAC.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Final, Protocol

import av
import av.error
import av.filter
from PIL import Image

from l1.effects.media.soundfilters import AudioChain, silence
from l1.effects.media.source import ALL, Source, Window, decoding
from l1.effects.params import VideoEncoding
from l1.effects.registry import MediaError, Progress

__all__ = [
    "OUTPUT_NAME",
    "AudioEncode",
    "AudioOut",
    "Meter",
    "PacketCopy",
    "VideoOut",
    "audio_out",
    "finish",
    "open_target",
]

OUTPUT_NAME = "output.mp4"
_ENCODER: Final = "libx264"
_AUDIO_ENCODER: Final = "aac"


@contextmanager
def open_target(path: Path) -> Iterator[av.container.OutputContainer]:
    """An MP4 being written at ``path``."""
    # faststart puts the index first, so players can start before the download ends.
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as output:
        yield output


class ColourTagged(Protocol):
    """Anything that says how its YUV is meant: a frame, or a stream's codec context."""

    colorspace: int
    color_range: int
    color_primaries: int
    color_trc: int


# libavutil's matrices (AVColorSpace) as swscale names them, for RGB pictures made YUV.
_SWS_MATRIX: Final = {
    1: "ITU709",
    4: "FCC",
    5: "ITU601",
    6: "SMPTE170M",
    7: "SMPTE240M",
    9: "BT2020",
    10: "BT2020",
}


class VideoOut:
    """The H.264 stream of the output; frames get consecutive timestamps.

    The stream carries its source's colour tags (:meth:`tag_like`, or the first frame
    written), and RGB pictures are made YUV with that matrix and range, so an effect's
    output looks like its source wherever it left the colours alone. Untagged sources
    give untagged outputs, converted with swscale's defaults both ways.
    """

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
        # Frame threads, as the ffmpeg command line runs libx264 (PyAV's default of
        # slice threads would cut every frame into slices instead).
        stream.codec_context.thread_type = "AUTO"
        self._output = output
        self._stream = stream
        self.step = 1 / fps
        self.count = 0
        self._tagged = False
        self._matrix: str | None = None
        self._range = 0

    def tag_like(self, source: ColourTagged) -> None:
        """Give the stream ``source``'s colour tags (matrix, range, primaries, transfer),
        so players read the YUV the way it was made; only before the first frame."""
        if self.count or self._tagged:
            return
        self._tagged = True
        if int(source.colorspace) == 0:
            return  # RGB: it says nothing of the YUV made from it
        codec = self._stream.codec_context
        codec.colorspace = source.colorspace
        codec.color_range = source.color_range
        codec.color_primaries = source.color_primaries
        codec.color_trc = source.color_trc
        self._matrix = _SWS_MATRIX.get(int(source.colorspace))
        self._range = int(source.color_range)

    def write(self, picture: av.VideoFrame | Image.Image) -> None:
        """Encode the next frame; a picture of another size is scaled to the stream's."""
        if isinstance(picture, av.VideoFrame):
            self.tag_like(picture)
            frame = picture
        else:
            frame = self._from_picture(picture)
        frame.pts = self.count
        frame.time_base = self.step
        # Decoded frames carry their source picture type, which libx264 would obey.
        frame.pict_type = av.video.frame.PictureType.NONE
        self.count += 1
        self._output.mux(self._stream.encode(frame))

    def finish(self) -> None:
        """Drain the encoder."""
        self._output.mux(self._stream.encode(None))

    def _from_picture(self, picture: Image.Image) -> av.VideoFrame:
        rgb = picture if picture.mode == "RGB" else picture.convert("RGB")
        frame = av.VideoFrame.from_image(rgb)
        if self._matrix is None and not self._range:
            return frame  # the encoder converts with the defaults it decoded with
        width, height = self._stream.width, self._stream.height
        return frame.reformat(
            width,
            height,
            "yuv420p",
            dst_colorspace=self._matrix,
            dst_color_range=self._range or None,
        )


def _even(size: tuple[int, int]) -> tuple[int, int]:
    width, height = size
    return max(2, width - width % 2), max(2, height - height % 2)


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


# --- Audio ----------------------------------------------------------------------------


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
        self._stream = output.add_stream_from_template(template)
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
    """Audio decoded, cut to a window, time-stretched if asked, and encoded as AAC.
    Timestamps count samples, so clips appended one after another stay contiguous."""

    def __init__(
        self,
        output: av.container.OutputContainer,
        rate: int,
        layout: str,
        window: Window | None = None,
        tempo: float = 1.0,
    ) -> None:
        stream = output.add_stream(_AUDIO_ENCODER, rate=rate)
        stream.layout = layout
        stream.codec_context.time_base = Fraction(1, rate)
        self._output = output
        self._stream = stream
        self._rate = rate
        self._layout = layout
        self._window = window or Window()
        self._tempo = tempo
        self.samples = 0
        self.latest = -math.inf
        self._origin = 0.0
        self._input: av.audio.stream.AudioStream | None = None
        self._chain = AudioChain(rate, layout, tempo)

    @classmethod
    def like(
        cls,
        output: av.container.OutputContainer,
        src: Source,
        window: Window | None = None,
        tempo: float = 1.0,
    ) -> AudioEncode:
        """An encoder with the sample rate and channel layout of ``src``'s audio."""
        assert src.audio is not None
        encoder = cls(output, _rate(src.audio), _layout(src.audio), window, tempo)
        encoder.start(src)
        return encoder

    @classmethod
    def joining(
        cls, output: av.container.OutputContainer, sources: Sequence[Source]
    ) -> AudioEncode | None:
        """One encoder for the audio of clips played one after another (None when none
        of them has any), with the first sound's rate and layout."""
        template = next((src.audio for src in sources if src.audio is not None), None)
        if template is None:
            return None
        return cls(output, _rate(template), _layout(template))

    def start(self, src: Source) -> None:
        """Take audio from ``src`` next (flushing what the previous clip left)."""
        self._drain_decoder()
        self._encode(self._chain.flush())
        self._chain = AudioChain(self._rate, self._layout, self._tempo)
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
        self._chain = AudioChain(self._rate, self._layout, self._tempo)
        missing = round(seconds * self._rate) - self.samples
        while missing > 0:
            count = min(missing, self._rate)
            self._encode([silence(count, self._rate, self._layout)])
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


def _rate(stream: av.audio.stream.AudioStream) -> int:
    return stream.codec_context.sample_rate or 48_000


def _layout(stream: av.audio.stream.AudioStream) -> str:
    # AAC takes mono and stereo everywhere; wider layouts are folded to stereo.
    return "mono" if stream.codec_context.channels == 1 else "stereo"


AudioOut = PacketCopy | AudioEncode


def audio_out(
    output: av.container.OutputContainer, src: Source, window: Window = ALL
) -> AudioOut | None:
    """The sound of ``src`` inside ``window``: copied when MP4 can hold its codec,
    otherwise re-encoded as AAC (None when ``src`` has none)."""
    if src.audio is None:
        return None
    if src.audio.codec_context.name in output.supported_codecs:
        return PacketCopy(output, src.audio, src, window)
    return AudioEncode.like(output, src, window)


def finish(video: VideoOut, audio: AudioOut | None) -> None:
    """Drain the video encoder, then the audio."""
    video.finish()
    if audio is not None:
        audio.finish()
