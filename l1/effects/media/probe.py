"""What a file holds, told from its bytes: probing, safe image opening, and the
checks that refuse media an effect cannot or must not render.

The kind and format come from the content only (Pillow's signatures, FFmpeg's
probing of an unnamed stream), never from a file name. Images whose header
claims more pixels than the render's :class:`~l1.effects.limits.MediaLimits` allow are
refused before any pixel is
decoded, so a decompression bomb costs a header read, not gigabytes of memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Literal

import av
import av.error
import msgspec
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from l1.effects.limits import MAX_PIXELS, MediaLimits
from l1.effects.media.animation import DEFAULT_FRAME_MS
from l1.effects.registry import MediaError

__all__ = [
    "MAX_PIXELS",
    "Kind",
    "MediaError",
    "MediaInfo",
    "check_frame",
    "check_limits",
    "is_cover_art",
    "open_container",
    "open_image",
    "probe",
    "probe_input",
    "require",
]

_DEFAULT = MediaLimits()

Kind = Literal["image", "video", "audio", "unknown"]

# Pillow identifies these but cannot decode them; FFmpeg can, as video.
_PILLOW_IDENTIFY_ONLY = frozenset({"MPEG"})
# FFmpeg demuxers that read one still picture rather than a moving one.
_STILL_DEMUXERS = frozenset({"image2", "image2pipe"})
# Formats Pillow reads animations of; their moving pictures are video.
_ANIMATED = frozenset({"GIF", "WEBP"})
_HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


class MediaInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`probe` found: the kind of media, its format and its geometry."""

    kind: Kind
    format: str | None = None
    """Pillow's format name (``"PNG"``) or FFmpeg's demuxer name (``"mov,mp4,m4a,3gp,3g2,mj2"``)."""
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    """Seconds, for video and audio, when the container says."""
    fps: float | None = None
    frames: int | None = None
    """Video frames, counted by the container or estimated from duration and rate."""
    has_audio: bool = False
    animated: bool = False
    """An animated GIF or WebP (frames with their own durations)."""
    loop: int | None = None
    """An animation's repeats after the first showing (0: for ever; None: none)."""

    @property
    def pixels(self) -> int:
        """Pixels in one picture (0 when unknown)."""
        return (self.width or 0) * (self.height or 0)

    def describe(self) -> str:
        """A short phrase for messages, e.g. ``"video (mov,mp4,m4a,3gp,3g2,mj2)"``."""
        if self.kind == "unknown":
            return "not a recognised image, video or audio file (or a damaged or incomplete one)"
        return f"{self.kind} ({self.format})" if self.format else self.kind


def probe(path: Path, limits: MediaLimits = _DEFAULT) -> MediaInfo:
    """Identify the media in ``path`` from its bytes.

    Returns ``kind="unknown"`` for anything that is not media. Raises
    :class:`MediaError` when the header claims more pixels per picture than ``limits``.
    """
    info = _probe_image(path) or _probe_av(path)
    check_limits(info, limits)
    return info


def require(info: MediaInfo, accepts: Iterable[str], limits: MediaLimits = _DEFAULT) -> MediaInfo:
    """Return ``info`` when its kind is one of ``accepts`` (or ``accepts`` has ``"any"``);
    otherwise raise :class:`MediaError` saying what was expected and what was found."""
    allowed = set(accepts)
    if "any" in allowed or info.kind in allowed:
        check_limits(info, limits)
        return info
    expected = " or ".join(sorted(allowed))
    raise MediaError(f"this effect takes {expected} input, but the input is {info.describe()}")


def probe_input(path: Path, accepts: Iterable[str], limits: MediaLimits = _DEFAULT) -> MediaInfo:
    """:func:`probe` then :func:`require`: the media in ``path``, known to be accepted."""
    return require(probe(path, limits), accepts, limits)


def check_limits(info: MediaInfo, limits: MediaLimits = _DEFAULT) -> None:
    """Raise :class:`MediaError` when what the header of ``info`` claims (pixels per
    picture, frames, duration) is past ``limits``."""
    check_frame(info.width or 0, info.height or 0, limits, kind=info.kind)
    if info.frames is not None and info.frames > limits.max_frames:
        raise MediaError(
            f"refused: the {info.kind} has {info.frames:,} frames; "
            f"the limit is {limits.max_frames:,}"
        )
    if info.duration is not None and info.duration > limits.max_seconds:
        raise MediaError(
            f"refused: the {info.kind} lasts {info.duration:,.0f} s; "
            f"the limit is {limits.max_seconds:,.0f} s"
        )


def check_frame(width: int, height: int, limits: MediaLimits, *, kind: str = "video") -> None:
    """Raise :class:`MediaError` when a ``width`` x ``height`` picture has more pixels
    than ``limits`` allow."""
    if (refusal := limits.frame_refusal(width, height, kind)) is not None:
        raise MediaError(refusal)


def open_image(path: Path, limits: MediaLimits = _DEFAULT) -> Image.Image:
    """Decode the image in ``path`` as RGB, or RGBA when it has transparency.

    The size is checked before decoding; EXIF orientation is applied; the first
    frame of an animation is taken. Raises :class:`MediaError` for non-images,
    damaged files and images over the pixel limit.
    """
    image = _open_pillow(path)
    with image:
        check_limits(MediaInfo(kind="image", width=image.width, height=image.height), limits)
        try:
            image.load()
            return _normalise(image)
        except (OSError, ValueError) as error:
            raise MediaError(f"the image could not be decoded: {error}") from None


def _open_pillow(path: Path) -> Image.Image:
    try:
        return Image.open(path)
    except Image.DecompressionBombError as error:
        raise MediaError(f"refused: {error}") from None
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise MediaError(f"not an image this server can read: {error}") from None


def _probe_image(path: Path) -> MediaInfo | None:
    try:
        image = Image.open(path)
    except Image.DecompressionBombError as error:
        raise MediaError(f"refused: {error}") from None
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    with image:
        if image.format in _PILLOW_IDENTIFY_ONLY:
            return None
        if image.format in _ANIMATED and getattr(image, "n_frames", 1) > 1:
            return _describe_animation(image)
        return MediaInfo(kind="image", format=image.format, width=image.width, height=image.height)


def _describe_animation(image: Image.Image) -> MediaInfo:
    """An animated GIF or WebP, as the video it is. Its frames are only counted and timed
    (Pillow decodes them to do so) when their size is within the default limits."""
    frames: int = getattr(image, "n_frames", 1)
    info = MediaInfo(
        kind="video", format=image.format, width=image.width, height=image.height, frames=frames
    )
    check_limits(info, _DEFAULT)
    milliseconds = 0
    for index in range(frames):
        image.seek(index)
        if "duration" not in image.info:
            image.load()  # WebP tells a frame's duration once it is decoded
        milliseconds += int(image.info.get("duration") or 0) or DEFAULT_FRAME_MS
    seconds = milliseconds / 1000
    return msgspec.structs.replace(
        info,
        duration=seconds,
        fps=frames / seconds,
        animated=True,
        loop=image.info.get("loop"),
    )


@contextmanager
def open_container(path: Path) -> Iterator[av.container.InputContainer]:
    """Open ``path`` with PyAV, letting FFmpeg see the bytes but not the file name
    (some demuxers would otherwise trust a ``.png`` or ``.mp4`` suffix)."""
    with path.open("rb") as file, av.open(_Unnamed(file), "r") as container:
        yield container


class _Unnamed:
    """A readable, seekable file without a ``name`` for PyAV to pass on to FFmpeg."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True


def _probe_av(path: Path) -> MediaInfo:
    try:
        with open_container(path) as container:
            return _describe_container(container)
    except (av.error.FFmpegError, OSError, ValueError):
        return MediaInfo(kind="unknown")


def _describe_container(container: av.container.InputContainer) -> MediaInfo:
    name = container.format.name
    videos = [s for s in container.streams.video if not is_cover_art(s)]
    has_audio = bool(container.streams.audio)
    container_seconds = container.duration / av.time_base if container.duration else None
    if not videos:
        kind: Kind = "audio" if has_audio else "unknown"
        return MediaInfo(kind=kind, format=name, duration=container_seconds, has_audio=has_audio)
    stream = videos[0]
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else None
    duration = _stream_seconds(stream) or container_seconds
    frames = stream.frames or (round(duration * fps) if duration and fps else None)
    kind = "image" if name in _STILL_DEMUXERS or name.endswith("_pipe") else "video"
    return MediaInfo(
        kind=kind,
        format=name,
        width=stream.codec_context.width,
        height=stream.codec_context.height,
        duration=duration,
        fps=fps,
        frames=frames,
        has_audio=has_audio,
    )


def is_cover_art(stream: av.video.stream.VideoStream) -> bool:
    """True for a picture attached to a file (album art), which is not its video."""
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def _stream_seconds(stream: av.stream.Stream) -> float | None:
    if stream.duration is None or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


def _normalise(image: Image.Image) -> Image.Image:
    oriented = ImageOps.exif_transpose(image) or image
    if oriented.mode in ("RGB", "RGBA"):
        return oriented.copy() if oriented is image else oriented
    if oriented.mode in _HIGH_DEPTH_MODES:
        return _high_depth_to_rgb(oriented)
    has_alpha = "A" in oriented.getbands() or "transparency" in oriented.info
    return oriented.convert("RGBA" if has_alpha else "RGB")


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    # Pillow's own conversion clips 16-bit grey to white; scale it to 8 bits instead.
    values = np.asarray(image, dtype=np.float64)
    if image.mode != "F" and values.max(initial=0) > 255:
        values = values / 257.0
    grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")
