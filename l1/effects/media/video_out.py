"""The video stream of an output, written with PyAV: the encoder and its settings for
each codec, colour tags carried from the source, and frame timestamps.

Video is written at a constant frame rate, or at the source's own frame times when the
source is an animation. 4:2:0 and 4:2:2 video needs even dimensions, so an odd width or
height is rounded down by one pixel.
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Final, NamedTuple, Protocol, cast

import av
from PIL import Image

from l1.effects.params import Preset, VideoEncoding

__all__ = ["ColourTagged", "VideoOut"]


class _Encoder(NamedTuple):
    name: str
    pix_fmt: str


_ENCODERS: Final[dict[str, _Encoder]] = {
    "h264": _Encoder("libx264", "yuv420p"),
    "hevc": _Encoder("libx265", "yuv420p"),
    "vp9": _Encoder("libvpx-vp9", "yuv420p"),
    "av1": _Encoder("libsvtav1", "yuv420p"),
    "prores": _Encoder("prores_ks", "yuv422p10le"),
    "ffv1": _Encoder("ffv1", "yuv420p"),
}

# x264's presets, as libvpx's cpu-used (5 and up in its real-time mode) and SVT-AV1's
# presets: each the nearest in speed.
_VP9_SPEED: Final[dict[Preset, int]] = {
    "ultrafast": 8, "superfast": 8, "veryfast": 7, "faster": 6, "fast": 5,
    "medium": 4, "slow": 2, "slower": 1, "veryslow": 0,
}  # fmt: skip
_SVT_PRESET: Final[dict[Preset, int]] = {
    "ultrafast": 12, "superfast": 11, "veryfast": 10, "faster": 9, "fast": 8,
    "medium": 6, "slow": 4, "slower": 3, "veryslow": 2,
}  # fmt: skip


def _encoder_options(codec: str, encoding: VideoEncoding) -> dict[str, str]:
    crf, preset = encoding.crf, encoding.preset
    if codec == "h264":
        return {"crf": str(crf), "preset": preset}
    if codec == "hevc":
        quiet = "log-level=error" + (":lossless=1" if crf == 0 else "")
        return {"crf": str(crf), "preset": preset, "x265-params": quiet}
    if codec == "vp9":
        speed = _VP9_SPEED[preset]
        options = {"crf": str(crf), "b": "0", "cpu-used": str(speed), "row-mt": "1"}
        options["deadline"] = "realtime" if speed >= 5 else "good"
        return options | ({"lossless": "1"} if crf == 0 else {})
    if codec == "av1":
        # SVT-AV1 reads its log level from the environment; keep its banner off stderr.
        os.environ.setdefault("SVT_LOG", "1")
        return {"crf": str(max(crf, 1)), "preset": str(_SVT_PRESET[preset])}
    if codec == "prores":
        return {"profile": "3"}  # 422 HQ
    return {}


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
    """The video stream of the output. Frames get consecutive timestamps at a constant
    rate (from ``first``: a part of a split render), or, given ``time_base``, keep their
    own (an animation's frame durations).

    The stream carries its source's colour tags (:meth:`tag_like`, or the first frame
    written), and RGB pictures are made YUV with that matrix and range, so an effect's
    output looks like its source wherever it left the colours alone. Untagged sources
    give untagged outputs, converted with swscale's defaults both ways.
    """

    even = True  # 4:2:0 and 4:2:2 need even sizes

    def __init__(
        self,
        output: av.container.OutputContainer,
        size: tuple[int, int],
        fps: Fraction,
        codec: str,
        encoding: VideoEncoding,
        *,
        time_base: Fraction | None = None,
        first: int = 0,
    ) -> None:
        encoder = _ENCODERS[codec]
        options = _encoder_options(codec, encoding)
        stream = cast(
            "av.video.stream.VideoStream",
            output.add_stream(encoder.name, rate=fps, options=options),
        )
        stream.width, stream.height = _even(size)
        stream.pix_fmt = self.pix_fmt = encoder.pix_fmt
        stream.codec_context.time_base = time_base or 1 / fps
        if codec == "hevc" and output.format.name in ("mp4", "mov"):
            stream.codec_tag = "hvc1"  # what Apple's players look for
        stream.codec_context.thread_count = 0  # a thread per core
        # Frame threads, as the ffmpeg command line runs libx264 (PyAV's default of
        # slice threads would cut every frame into slices instead).
        stream.codec_context.thread_type = "AUTO"
        self._output = output
        self._stream = stream
        self._time_base = time_base
        self._origin: float | None = None
        self._durations: dict[int, int] = {}  # by timestamp, until the packet is out
        self.step = 1 / fps
        self.count = 0
        self._first = first  # a part of a split render counts on from its first frame
        self._tagged = False
        self._matrix: str | None = None
        self._range = 0

    def use_threads(self, threads: int) -> None:
        """Encode with ``threads`` threads (0: one per core); only before the first frame."""
        self._stream.codec_context.thread_count = threads

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

    def write(self, picture: av.VideoFrame | Image.Image, at: float | None = None) -> None:
        """Encode the next frame (shown from ``at`` seconds when the stream keeps frame
        times); a picture of another size is scaled to the stream's."""
        duration: float | None = None
        if isinstance(picture, av.VideoFrame):
            self.tag_like(picture)
            frame = picture
            if picture.duration and picture.time_base:
                duration = float(picture.duration * picture.time_base)
        else:
            frame = self._from_picture(picture)
        frame.pts, frame.time_base = self._stamp(at)
        if duration is not None and self._time_base is not None:
            # Kept so that an animation's last frame lasts as long as it did (encoders
            # do not pass it on: the packet of the same time gets it below).
            self._durations[frame.pts] = max(1, round(duration / self._time_base))
        # Decoded frames carry their source picture type, which the encoder would obey.
        frame.pict_type = av.video.frame.PictureType.NONE
        self.count += 1
        self._mux(self._stream.encode(frame))

    def _mux(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            if packet.pts is not None and packet.pts in self._durations:
                packet.duration = self._durations.pop(packet.pts)
        self._output.mux(packets)

    def _stamp(self, at: float | None) -> tuple[int, Fraction]:
        if self._time_base is None or at is None:
            return self._first + self.count, self.step
        if self._origin is None:
            self._origin = at
        return round((at - self._origin) / self._time_base), self._time_base

    def finish(self) -> None:
        """Drain the encoder."""
        self._mux(self._stream.encode(None))

    def _from_picture(self, picture: Image.Image) -> av.VideoFrame:
        rgb = picture if picture.mode == "RGB" else picture.convert("RGB")
        frame = av.VideoFrame.from_image(rgb)
        if self._matrix is None and not self._range and self.pix_fmt == "yuv420p":
            return frame  # the encoder converts with the defaults it decoded with
        width, height = self._stream.width, self._stream.height
        return frame.reformat(
            width,
            height,
            self.pix_fmt,
            dst_colorspace=self._matrix,
            dst_color_range=self._range or None,
        )


def _even(size: tuple[int, int]) -> tuple[int, int]:
    width, height = size
    return max(2, width - width % 2), max(2, height - height % 2)
