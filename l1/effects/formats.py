"""Which file a render writes: the container, the video codec and what becomes of the
sound, chosen from the input and the caller's ``encoding`` (the README's table).

The rules live here, free of the media libraries, so that the API validates
``encoding.format`` and ``encoding.codec`` against the same table the workers follow.
"""

from __future__ import annotations

from typing import Final, Literal, NamedTuple

__all__ = [
    "ANIMATED",
    "CONTAINERS",
    "STILL",
    "Container",
    "Format",
    "VideoCodec",
    "check_codec",
    "default_format",
    "video_format_for",
]

Format = Literal["mp4", "mov", "mkv", "webm", "gif", "webp", "png", "jpeg"]
VideoCodec = Literal["h264", "hevc", "vp9", "av1", "prores", "ffv1"]


class Container(NamedTuple):
    """A video container: its FFmpeg muxer, the video codecs it is written with (the
    first is the default), the audio codecs copied into it as they are, and the encoder
    for any other sound."""

    muxer: str
    suffix: str
    codecs: tuple[VideoCodec, ...]
    audio_copy: frozenset[str]
    audio_encoder: str


_PCM: Final = frozenset({"pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be", "pcm_f32le"})

CONTAINERS: Final[dict[str, Container]] = {
    "mp4": Container(
        "mp4",
        ".mp4",
        ("h264", "hevc", "av1"),
        frozenset({"aac", "mp3", "ac3", "eac3", "alac"}),
        "aac",
    ),
    "mov": Container(
        "mov", ".mov", ("h264", "hevc", "prores"), frozenset({"aac", "mp3", "alac"}) | _PCM, "aac"
    ),
    "mkv": Container(
        "matroska",
        ".mkv",
        ("h264", "hevc", "vp9", "av1", "ffv1", "prores"),
        frozenset({"aac", "mp3", "opus", "vorbis", "flac", "ac3", "eac3", "mp2", "alac"}) | _PCM,
        "libopus",
    ),
    "webm": Container("webm", ".webm", ("vp9", "av1"), frozenset({"opus", "vorbis"}), "libopus"),
}
"""The video containers a render writes, by ``encoding.format``."""

ANIMATED: Final = frozenset({"gif", "webp"})
"""Formats that hold an animation (frames with their own durations, a loop count)."""

STILL: Final = frozenset({"png", "jpeg", "webp", "gif"})
"""Formats a still image can be written in."""

_WEBM_VIDEO: Final = frozenset({"vp8", "vp9", "av1"})
_WEBM_AUDIO: Final = frozenset({"opus", "vorbis"})


def check_codec(format: Format | None, codec: VideoCodec | None) -> None:
    """Raise ``ValueError`` when ``format`` cannot hold video coded as ``codec``."""
    if codec is None or format is None:
        return
    container = CONTAINERS.get(format)
    if container is None:
        raise ValueError(f"a codec applies to video formats only; {format} is written as it is")
    if codec not in container.codecs:
        raise ValueError(f"{format} holds {', '.join(container.codecs)} video, not {codec}")


def default_format(
    demuxer: str, *, brand: str = "", video_codec: str = "", audio_codec: str = ""
) -> Format:
    """The format a video input is written back in when the caller names none: its own
    container where it can hold the result, MP4 otherwise.

    ``demuxer`` is FFmpeg's name for the input's format (``"matroska,webm"``), ``brand``
    the MP4 family's major brand, and the codecs those of the input's first streams.
    """
    if demuxer == "gif":
        return "gif"
    if demuxer.startswith("mov,mp4"):
        return "mov" if brand.strip() == "qt" else "mp4"
    if demuxer == "matroska,webm":
        webm = video_codec in _WEBM_VIDEO and audio_codec in {"", *_WEBM_AUDIO}
        return "webm" if webm else "mkv"
    if demuxer == "ogg":
        return "webm"  # Theora cannot be written here; Vorbis and Opus copy into WebM
    return "mp4"


def video_format_for(default: Format, codec: VideoCodec | None) -> Format:
    """``default`` when it can hold ``codec`` (or no codec is asked for), else the first
    of MP4, WebM, MOV and Matroska that can."""
    container = CONTAINERS.get(default)
    if codec is None or (container is not None and codec in container.codecs):
        return default
    return next(name for name in _BY_REACH if codec in CONTAINERS[name].codecs)


# The containers a codec asked for alone is written in, the most widely played first.
_BY_REACH: Final[tuple[Format, ...]] = ("mp4", "webm", "mov", "mkv")
