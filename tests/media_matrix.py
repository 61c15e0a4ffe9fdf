"""The media matrix: short files in many containers and codecs, each with what the
README's table says a render of it must give (format, media type, audio, frames,
duration).

Every file is a second of the moving test pattern at 96x64 and 12 fps, with a 440 Hz
tone where the case has sound, so the whole matrix renders in seconds. The exceptions
are the point of their cases (an odd size, 29.97 fps, a variable rate) or what the
codec demands (MPEG-2 and MXF take only broadcast rates, DNxHR a frame of 256x120 or
more). Videos are made with the encoders the ``av`` wheel ships; Theora and Vorbis
in Ogg need Debian's ``/usr/bin/ffmpeg`` (the wheel has no Theora encoder), and AVIF
needs a Pillow built with it: those cases say why they cannot run instead.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Final

import av
import numpy as np
from PIL import Image, features

from tests.media import pattern

__all__ = [
    "ANIMATION_CASES",
    "CASES",
    "DEBIAN_FFMPEG",
    "FORMATS",
    "STILL_CASES",
    "VIDEO_CASES",
    "Case",
    "Clip",
    "ContainerFacts",
    "Expect",
    "OutputFormat",
    "Track",
    "animation_timing",
    "case",
    "container_facts",
    "demuxer_of",
    "make_text_as_mp4",
    "make_truncated",
    "video_seconds",
    "write_clip",
]

WIDTH, HEIGHT, FPS = 96, 64, 12
AUDIO_RATE: Final = 48_000
DEBIAN_FFMPEG: Final = Path("/usr/bin/ffmpeg")

MP4_DEMUXER: Final = "mov,mp4,m4a,3gp,3g2,mj2"
MATROSKA_DEMUXER: Final = "matroska,webm"


@dataclass(frozen=True)
class OutputFormat:
    """How a written format shows itself: the media type sniffed from its bytes, the
    name FFmpeg's probing gives its container, the MP4 family's major brand, and the
    video codec a default render writes."""

    media_type: str
    demuxer: str
    brand: str | None = None
    video_codec: str | None = None


FORMATS: Final[dict[str, OutputFormat]] = {
    "mp4": OutputFormat("video/mp4", MP4_DEMUXER, "isom", "h264"),
    "mov": OutputFormat("video/quicktime", MP4_DEMUXER, "qt", "h264"),
    "mkv": OutputFormat("video/x-matroska", MATROSKA_DEMUXER, None, "h264"),
    "webm": OutputFormat("video/webm", MATROSKA_DEMUXER, None, "vp9"),
    "gif": OutputFormat("image/gif", "gif"),
    "webp": OutputFormat("image/webp", "webp_pipe"),
    "png": OutputFormat("image/png", "png_pipe"),
    "jpeg": OutputFormat("image/jpeg", "jpeg_pipe"),
}
"""Every ``encoding.format``, as a file in that format is recognised."""


@dataclass(frozen=True)
class Expect:
    """What the rules say a render of a case gives when no format is asked for.

    ``audio`` is the codec of the output's sound (None: no sound); ``frames`` and
    ``seconds`` are the input's (None for a still), which the output keeps;
    ``durations`` and ``loop`` are an animation's per-frame milliseconds and loop count.
    """

    format: str
    audio: str | None = None
    frames: int | None = None
    seconds: float | None = None
    durations: tuple[int, ...] | None = None
    loop: int | None = None
    size: tuple[int, int] = (WIDTH, HEIGHT)

    @property
    def kind(self) -> str:
        """``"video"``, ``"animation"`` or ``"still"``."""
        if self.durations is not None:
            return "animation"
        return "still" if self.frames is None else "video"

    @property
    def frame_seconds(self) -> float:
        """The longest a frame lasts: the tolerance on a duration."""
        if self.durations:
            return max(self.durations) / 1000
        if self.frames and self.seconds:
            return self.seconds / self.frames
        return 0.0


@dataclass(frozen=True)
class Case:
    """One input of the matrix: an id, how to make it, and what rendering it gives."""

    id: str
    make: Callable[[Path], Path]
    expect: Expect
    source: str = ""
    """The input as a person would name it (for the README's table)."""
    requires: Callable[[], str | None] = field(default=lambda: None)
    """Why the case cannot be made here, or None when it can."""

    def skip_reason(self) -> str | None:
        """Why this machine cannot make the case (None: it can)."""
        return self.requires()


# --- Writing video with PyAV ----------------------------------------------------------


@dataclass(frozen=True)
class Track:
    """An audio track: the encoder, its options, and the channel layout fed to it."""

    encoder: str
    layout: str = "mono"
    options: dict[str, str] = field(default_factory=dict)
    rate: int = AUDIO_RATE


@dataclass(frozen=True)
class Clip:
    """A video to write: container, codec, pixel format, size, timing and sound."""

    muxer: str
    codec: str
    pix_fmt: str = "yuv420p"
    size: tuple[int, int] = (WIDTH, HEIGHT)
    rate: Fraction = Fraction(FPS)
    frames: int = FPS
    options: dict[str, str] = field(default_factory=dict)
    audio: Track | None = None
    times: Sequence[float] | None = None
    """Presentation times in seconds, for a variable frame rate (else ``1 / rate`` apart)."""
    end: float | None = None
    """When the last frame ends, with ``times``."""
    container_options: dict[str, str] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """How long the video lasts."""
        if self.end is not None:
            return self.end
        return float(self.frames / self.rate)


def write_clip(path: Path, clip: Clip) -> Path:
    """Write ``clip`` to ``path``: the moving test pattern, and a tone when it has sound."""
    with av.open(str(path), "w", format=clip.muxer, options=clip.container_options) as output:
        video = output.add_stream(clip.codec, rate=clip.rate, options=clip.options)
        assert isinstance(video, av.video.stream.VideoStream)
        video.width, video.height = clip.size
        video.pix_fmt = clip.pix_fmt
        time_base = Fraction(1, 1000) if clip.times is not None else 1 / clip.rate
        video.codec_context.time_base = time_base
        tone = _Tone(output, clip.audio) if clip.audio is not None else None
        for index in range(clip.frames):
            frame = av.VideoFrame.from_ndarray(pattern(*clip.size, index), format="rgb24")
            start = clip.times[index] if clip.times is not None else index / clip.rate
            frame.pts = round(start / time_base)
            frame.time_base = time_base
            output.mux(video.encode(frame))
            if tone is not None:
                tone.write_until(float(start) + float(1 / clip.rate))
        output.mux(video.encode(None))
        if tone is not None:
            tone.write_until(clip.seconds)
            tone.finish()
    return path


class _Tone:
    """A 440 Hz sine written with any audio encoder (PyAV converts the samples)."""

    def __init__(self, output: av.container.OutputContainer, track: Track) -> None:
        self._output = output
        self._rate = track.rate
        self._layout = track.layout
        stream = output.add_stream(track.encoder, rate=track.rate, options=track.options)
        assert isinstance(stream, av.audio.stream.AudioStream)
        self._stream = stream
        self._stream.layout = track.layout
        self._samples = 0
        self._chunk = 1024

    def write_until(self, seconds: float) -> None:
        channels = 2 if self._layout == "stereo" else 1
        while self._samples < seconds * self._rate:
            t = np.arange(self._samples, self._samples + self._chunk) / self._rate
            wave = (0.3 * np.sin(2 * math.pi * 440.0 * t)).astype(np.float32)
            planes = np.repeat(wave[None, :], channels, axis=0)
            frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=self._layout)
            frame.sample_rate = self._rate
            frame.pts = self._samples
            frame.time_base = Fraction(1, self._rate)
            self._samples += self._chunk
            self._output.mux(self._stream.encode(frame))

    def finish(self) -> None:
        self._output.mux(self._stream.encode(None))


def _clip_maker(clip: Clip) -> Callable[[Path], Path]:
    return lambda path: write_clip(path, clip)


X264: Final = {"preset": "ultrafast", "crf": "30"}
OPUS: Final = Track("libopus")
AAC: Final = Track("aac")
PCM: Final = Track("pcm_s16le")


def _video(
    id: str,
    source: str,
    clip: Clip,
    format: str,
    audio: str | None,
    *,
    size: tuple[int, int] | None = None,
) -> Case:
    return Case(
        id,
        _clip_maker(clip),
        Expect(
            format,
            audio=audio,
            frames=clip.frames,
            seconds=clip.seconds,
            size=size or clip.size,
        ),
        source=source,
    )


# Timestamps of the variable-rate clip: 12 frames, some short, some long (seconds).
VFR_TIMES: Final = (0.0, 0.04, 0.08, 0.2, 0.24, 0.4, 0.44, 0.48, 0.6, 0.64, 0.8, 0.92)
VFR_END: Final = 1.0

VIDEO_CASES: Final[tuple[Case, ...]] = (
    _video(
        "webm-vp9-opus",
        "WebM, VP9 + Opus",
        Clip("webm", "libvpx-vp9", options={"deadline": "realtime", "cpu-used": "8"}, audio=OPUS),
        "webm",
        "opus",
    ),
    _video(
        "mkv-av1-opus",
        "Matroska, AV1 (SVT) + Opus",
        Clip("matroska", "libsvtav1", options={"preset": "12"}, audio=OPUS),
        "webm",
        "opus",
    ),
    _video(
        "webm-av1",
        "WebM, AV1 (SVT), no audio",
        Clip("webm", "libsvtav1", options={"preset": "12"}),
        "webm",
        None,
    ),
    _video(
        "mp4-hevc-aac",
        "MP4, HEVC + AAC",
        Clip(
            "mp4",
            "libx265",
            options={"preset": "ultrafast", "x265-params": "log-level=error"},
            audio=AAC,
        ),
        "mp4",
        "aac",
    ),
    _video(
        "mp4-h264-mp3",
        "MP4, H.264 + MP3",
        Clip("mp4", "libx264", options=X264, audio=Track("libmp3lame", rate=44_100)),
        "mp4",
        "mp3",
    ),
    _video(
        "mkv-h264-flac",
        "Matroska, H.264 + FLAC",
        Clip("matroska", "libx264", options=X264, audio=Track("flac")),
        "mkv",
        "flac",
    ),
    _video(
        "mkv-h264-vorbis",
        "Matroska, H.264 + Vorbis",
        Clip(
            "matroska",
            "libx264",
            options=X264,
            audio=Track("vorbis", layout="stereo", options={"strict": "experimental"}),
        ),
        "mkv",
        "vorbis",
    ),
    _video(
        "mkv-ffv1-pcm",
        "Matroska, FFV1 + PCM",
        Clip("matroska", "ffv1", pix_fmt="yuv420p", audio=PCM),
        "mkv",
        "pcm_s16le",
    ),
    _video(
        "ts-mpeg2-mp2",
        "MPEG-TS, MPEG-2 + MP2",
        Clip("mpegts", "mpeg2video", rate=Fraction(25), frames=25, audio=Track("mp2")),
        "mp4",
        "aac",
    ),
    _video(
        "avi-mjpeg-pcm",
        "AVI, MJPEG + PCM",
        Clip("avi", "mjpeg", pix_fmt="yuvj420p", audio=PCM),
        "mp4",
        "aac",
    ),
    _video(
        "mov-prores-pcm",
        "MOV (QuickTime), ProRes 422 + PCM",
        Clip("mov", "prores_ks", pix_fmt="yuv422p10le", options={"profile": "0"}, audio=PCM),
        "mov",
        "pcm_s16le",
    ),
    _video(
        "mxf-dnxhr-pcm",
        "MXF, DNxHR LB + PCM",
        Clip(
            "mxf",
            "dnxhd",
            pix_fmt="yuv422p",
            size=(256, 128),  # DNxHR's smallest frame
            rate=Fraction(25),
            frames=25,
            options={"profile": "dnxhr_lb"},
            audio=PCM,
        ),
        "mp4",
        "aac",
    ),
    _video(
        "mp4-h264-10bit",
        "MP4, H.264 High 10 (yuv420p10le) + AAC",
        Clip("mp4", "libx264", pix_fmt="yuv420p10le", options=X264, audio=AAC),
        "mp4",
        "aac",
    ),
    _video(
        "mp4-h264-444",
        "MP4, H.264 4:4:4 (yuv444p), no audio",
        Clip("mp4", "libx264", pix_fmt="yuv444p", options=X264),
        "mp4",
        None,
    ),
    _video(
        "mp4-h264-vfr",
        "MP4, H.264 at a variable frame rate + AAC",
        Clip(
            "mp4",
            "libx264",
            options=X264,
            times=VFR_TIMES,
            end=VFR_END,
            frames=len(VFR_TIMES),
            audio=AAC,
        ),
        "mp4",
        "aac",
    ),
    _video(
        "mp4-h264-odd-size",
        "MP4, H.264 4:4:4 at 95x63 (odd), no audio",
        Clip("mp4", "libx264", pix_fmt="yuv444p", size=(95, 63), options=X264),
        "mp4",
        None,
    ),
    _video(
        "mp4-h264-2997",
        "MP4, H.264 at 29.97 fps + AAC",
        Clip("mp4", "libx264", rate=Fraction(30_000, 1001), frames=30, options=X264, audio=AAC),
        "mp4",
        "aac",
    ),
)


# --- Made with Debian's ffmpeg ------------------------------------------------------


def _needs_debian_ffmpeg() -> str | None:
    if not DEBIAN_FFMPEG.exists():
        return f"{DEBIAN_FFMPEG} is not installed (Theora needs its libtheora)"
    return None


def make_ogg(path: Path) -> Path:
    """Theora + Vorbis in Ogg, written by Debian's ffmpeg from its own test sources."""
    spec = f"size={WIDTH}x{HEIGHT}:rate={FPS}:duration=1"
    command = [
        str(DEBIAN_FFMPEG), "-nostdin", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2={spec}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={AUDIO_RATE}:duration=1",
        "-c:v", "libtheora", "-q:v", "5", "-c:a", "libvorbis", "-ac", "2",
        "-shortest", "-f", "ogg", str(path),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return path


OGG_CASE: Final = Case(
    "ogg-theora-vorbis",
    make_ogg,
    Expect("webm", audio="vorbis", frames=FPS, seconds=1.0),
    source="Ogg, Theora + Vorbis",
    requires=_needs_debian_ffmpeg,
)


# --- Animations and stills (Pillow) ---------------------------------------------------

GIF_DURATIONS: Final = (60, 100, 150, 80, 200, 120, 90, 200)
WEBP_DURATIONS: Final = (50, 120, 80, 200, 100, 150, 70, 230)


def _frames(count: int, size: tuple[int, int] = (WIDTH, HEIGHT)) -> list[Image.Image]:
    return [Image.fromarray(pattern(*size, index * 3)) for index in range(count)]


def make_gif(path: Path) -> Path:
    """An animated GIF: frames of varying durations, played twice more (loop 2)."""
    first, *rest = _frames(len(GIF_DURATIONS))
    first.save(
        path, format="GIF", save_all=True, append_images=rest,
        duration=list(GIF_DURATIONS), loop=2, disposal=1, optimize=False,
    )  # fmt: skip
    return path


def make_webp(path: Path) -> Path:
    """An animated WebP: frames of varying durations, looping for ever (loop 0)."""
    first, *rest = _frames(len(WEBP_DURATIONS))
    first.save(
        path, format="WEBP", save_all=True, append_images=rest,
        duration=list(WEBP_DURATIONS), loop=0, quality=80, method=0,
    )  # fmt: skip
    return path


ANIMATION_CASES: Final[tuple[Case, ...]] = (
    Case(
        "gif-animated",
        make_gif,
        Expect(
            "gif",
            frames=len(GIF_DURATIONS),
            seconds=sum(GIF_DURATIONS) / 1000,
            durations=GIF_DURATIONS,
            loop=2,
        ),
        source="GIF, animated (varying frame durations, loop 2)",
    ),
    Case(
        "webp-animated",
        make_webp,
        Expect(
            "webp",
            frames=len(WEBP_DURATIONS),
            seconds=sum(WEBP_DURATIONS) / 1000,
            durations=WEBP_DURATIONS,
            loop=0,
        ),
        source="WebP, animated (varying frame durations, loop 0)",
    ),
)


def _still(path: Path, picture: Image.Image, format: str, **options: object) -> Path:
    picture.save(path, format=format, **options)
    return path


def _sixteen_bit() -> Image.Image:
    """A grey ramp using the whole 16-bit range."""
    ramp = np.linspace(0, 65_535, WIDTH, dtype=np.float64)[None, :]
    values = np.broadcast_to(ramp, (HEIGHT, WIDTH)).astype(np.uint16)
    return Image.fromarray(values)  # uint16: Pillow's "I;16"


def _with_alpha() -> Image.Image:
    picture = Image.fromarray(pattern(WIDTH, HEIGHT))
    alpha = np.broadcast_to(np.linspace(0, 255, WIDTH, dtype=np.uint8), (HEIGHT, WIDTH))
    picture.putalpha(Image.fromarray(np.ascontiguousarray(alpha)))
    return picture


def _rgb() -> Image.Image:
    return Image.fromarray(pattern(WIDTH, HEIGHT, 5))


def _needs_avif() -> str | None:
    return None if features.check("avif") else "this Pillow cannot write AVIF"


def _still_case(
    id: str,
    source: str,
    make: Callable[[Path], Path],
    *,
    requires: Callable[[], str | None] = lambda: None,
) -> Case:
    return Case(id, make, Expect("png"), source=source, requires=requires)


STILL_CASES: Final[tuple[Case, ...]] = (
    _still_case("png-16bit", "PNG, 16-bit grey", lambda p: _still(p, _sixteen_bit(), "PNG")),
    _still_case("tiff-16bit", "TIFF, 16-bit grey", lambda p: _still(p, _sixteen_bit(), "TIFF")),
    _still_case("png-alpha", "PNG, RGBA", lambda p: _still(p, _with_alpha(), "PNG")),
    _still_case("bmp", "BMP", lambda p: _still(p, _rgb(), "BMP")),
    _still_case("jpeg", "JPEG", lambda p: _still(p, _rgb(), "JPEG", quality=85)),
    _still_case(
        "avif",
        "AVIF",
        lambda p: _still(p, _rgb(), "AVIF", quality=80),
        requires=_needs_avif,
    ),
    _still_case("webp-still", "WebP, one picture", lambda p: _still(p, _rgb(), "WEBP")),
)

CASES: Final[tuple[Case, ...]] = (*VIDEO_CASES, OGG_CASE, *ANIMATION_CASES, *STILL_CASES)
"""Every input of the matrix."""

_BY_ID: Final = {c.id: c for c in CASES}


def case(id: str) -> Case:
    """The case named ``id``."""
    return _BY_ID[id]


# --- Broken inputs --------------------------------------------------------------------


def make_truncated(source: Path, path: Path, *, keep: float = 0.5) -> Path:
    """The first ``keep`` of ``source``'s bytes, as a download cut short leaves them."""
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def make_text_as_mp4(path: Path) -> Path:
    """Plain text in a file named like a video."""
    path.write_text("this is not a video, only words in a file named .mp4\n" * 20)
    return path


# --- Reading what a render wrote ------------------------------------------------------


@dataclass(frozen=True)
class ContainerFacts:
    """What FFmpeg says of a video file: its container, brand, codecs, size, frames
    and how long the frames last."""

    demuxer: str
    brand: str | None
    video_codec: str
    size: tuple[int, int]
    frames: int
    seconds: float
    audio_codec: str | None


def container_facts(path: Path) -> ContainerFacts:
    """Decode ``path`` and report what it holds (for short files only)."""
    with av.open(str(path)) as container:
        brand = container.metadata.get("major_brand")
        video = container.streams.video[0]
        audio = _codec_name(container.streams.audio[0]) if container.streams.audio else None
        times = [
            (float(frame.time or 0.0), _frame_seconds(frame, video))
            for frame in container.decode(video=0)
        ]
        return ContainerFacts(
            demuxer=container.format.name,
            brand=brand.strip() if brand else None,
            video_codec=video.codec_context.codec.canonical_name,
            size=(video.codec_context.width, video.codec_context.height),
            frames=len(times),
            seconds=video_seconds(times),
            audio_codec=audio,
        )


def _frame_seconds(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> float:
    if frame.duration and frame.time_base:
        return float(frame.duration * frame.time_base)
    rate = stream.average_rate or stream.guessed_rate
    return float(1 / rate) if rate else 0.0


def video_seconds(times: Sequence[tuple[float, float]]) -> float:
    """From the first frame's start to the last frame's end, given each frame's
    (start, length) in seconds."""
    if not times:
        return 0.0
    ordered = sorted(times)
    return ordered[-1][0] + ordered[-1][1] - ordered[0][0]


def demuxer_of(path: Path) -> str:
    """The name FFmpeg's probing gives the format of ``path``."""
    with av.open(str(path)) as container:
        return str(container.format.name)


def animation_timing(path: Path) -> tuple[tuple[int, ...], int | None, tuple[int, int]]:
    """An animated GIF's or WebP's per-frame durations (ms), loop count and size, as
    Pillow reads them."""
    with Image.open(path) as image:
        durations = []
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            image.load()  # WebP says a frame's duration once it is decoded
            durations.append(int(image.info.get("duration", 0)))
        return tuple(durations), image.info.get("loop"), image.size


def _codec_name(stream: av.stream.Stream) -> str:
    # The codec's own name, not its decoder's ("mp3", not "mp3float").
    return str(stream.codec_context.codec.canonical_name)
