"""Small pictures of cached items: an image scaled down, or a video's first frame.

Making one decodes untrusted media, so it happens in a thumbnail process of its own
(``python -m l1.cache.thumbnails MEMORY``), which its parent kills when it takes too
long: :func:`serve` reads :class:`ThumbnailJob` frames on stdin and answers each with a
:class:`ThumbnailOutcome` on stdout. The process's memory is bounded by ``RLIMIT_DATA``,
and a picture's size is checked against the pixel limit before anything is decoded.
PIL and PyAV are imported only there, so that importing this module costs nothing.
"""

from __future__ import annotations

import math
import os
import resource
import signal
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import msgspec

from l1.effects.limits import MediaLimits

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = [
    "FRAME_LENGTH",
    "THUMBNAIL_SIZE",
    "Refused",
    "ThumbnailJob",
    "ThumbnailOutcome",
    "check_size",
    "encode_frame",
    "make_thumbnail",
    "serve",
]

THUMBNAIL_SIZE = 320
FRAME_LENGTH = 4
"""A frame on the pipe: its payload's length in this many bytes, then msgpack."""


class ThumbnailJob(msgspec.Struct, frozen=True, kw_only=True):
    """One thumbnail to make: the ``kind`` (``image`` or ``video``) file at ``source``
    written as a JPEG to ``target``, refused when a picture has over ``max_pixels``;
    ``seconds`` is its time limit, which its parent enforces."""

    source: str
    target: str
    kind: str
    max_pixels: int
    seconds: float
    size: int = THUMBNAIL_SIZE


class ThumbnailOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """Whether the thumbnail was ``made``, and if not, why; ``retire`` when the process
    that tried should not be given another (it ran out of memory)."""

    made: bool
    reason: str = ""
    retire: bool = False


class Refused(Exception):
    """No thumbnail can be made of this file (over the limit, or not decodable)."""


def make_thumbnail(job: ThumbnailJob) -> None:
    """Write the thumbnail ``job`` asks for; raise :class:`Refused` when it cannot be
    made, or ``MemoryError``."""
    from PIL import Image as PIL

    # Pillow's own check, wherever a plugin makes it, refuses what ours would.
    PIL.MAX_IMAGE_PIXELS = job.max_pixels
    warnings.simplefilter("error", PIL.DecompressionBombWarning)
    picture = _first_frame(job) if job.kind == "video" else _image(job)
    picture.thumbnail((job.size, job.size))
    if picture.mode not in ("RGB", "L"):
        picture = picture.convert("RGB")
    partial = Path(f"{job.target}.{os.getpid()}.part")
    picture.save(partial, format="JPEG", quality=80)
    partial.replace(job.target)  # whole or not at all: a reader never sees half a picture


def check_size(width: int, height: int, max_pixels: int, kind: str) -> None:
    """Raise :class:`Refused` when a ``width`` x ``height`` picture is over the limit."""
    refusal = MediaLimits(max_pixels=max_pixels).frame_refusal(width, height, kind)
    if refusal is not None:
        raise Refused(refusal)


def _image(job: ThumbnailJob) -> Image:
    from PIL import Image as PIL

    try:
        with warnings.catch_warnings():  # past the limit, but not twice: said below
            warnings.simplefilter("ignore", PIL.DecompressionBombWarning)
            picture = PIL.open(job.source)  # reads the header only
    except PIL.DecompressionBombError as error:
        raise Refused(f"refused: {error}") from None
    except (OSError, ValueError):
        raise Refused("not a picture this server can read") from None
    check_size(picture.width, picture.height, job.max_pixels, "image")
    picture.draft("RGB", (job.size * 2, job.size * 2))  # JPEG: decode smaller
    try:
        picture.load()
    except (PIL.DecompressionBombError, PIL.DecompressionBombWarning) as error:
        raise Refused(f"refused: {error}") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise Refused(f"the picture could not be decoded: {_said(error, job)}") from None
    return picture


def _first_frame(job: ThumbnailJob) -> Image:
    import av

    # FFmpeg's own limit too: opening probes the streams, which may decode a frame.
    limit = {"max_pixels": str(job.max_pixels)}
    try:
        with av.open(job.source, options=limit) as container:
            if not container.streams.video:
                raise Refused("the file has no video stream")
            stream = container.streams.video[0]
            context = stream.codec_context
            check_size(context.width, context.height, job.max_pixels, "video")
            context.options = limit
            context.thread_count = 1  # one frame is wanted: no frames decoded ahead
            for frame in container.decode(stream):
                check_size(frame.width, frame.height, job.max_pixels, "video frame")
                width, height = _fitted(frame.width, frame.height, job.size * 2)
                # Scaled by FFmpeg before it becomes RGB: no full-size copy.
                return frame.to_image(width=width, height=height, interpolation="AREA")
    except av.error.MemoryError:
        raise MemoryError from None
    except av.error.FFmpegError as error:
        raise Refused(f"the video could not be decoded: {error.strerror}") from None
    except (OSError, ValueError) as error:
        raise Refused(f"the video could not be decoded: {_said(error, job)}") from None
    raise Refused("the video has no frame")


def _said(error: Exception, job: ThumbnailJob) -> str:
    """What ``error`` says, without the cache's paths."""
    return str(error).replace(job.source, "the file").replace(job.target, "the thumbnail")


def _fitted(width: int, height: int, most: int) -> tuple[int, int]:
    """``width`` x ``height`` scaled down (never up) to at most ``most`` a side."""
    scale = min(1.0, most / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _attempt(job: ThumbnailJob, memory: int) -> ThumbnailOutcome:
    # Should the parent be gone, nothing else ends a decode that never finishes.
    signal.alarm(math.ceil(job.seconds) + 1)
    try:
        make_thumbnail(job)
    except Refused as refused:
        return ThumbnailOutcome(made=False, reason=str(refused))
    except MemoryError:
        limit = f"{memory / 2**20:,.0f} MiB" if memory else "the machine's memory"
        reason = f"decoding it needed more than {limit}"
        return ThumbnailOutcome(made=False, reason=reason, retire=True)
    except Exception as error:  # anything else a hostile file can make a decoder say
        reason = f"{type(error).__name__}: {_said(error, job)}"
        return ThumbnailOutcome(made=False, reason=reason)
    finally:
        signal.alarm(0)
    return ThumbnailOutcome(made=True)


def encode_frame(message: msgspec.Struct) -> bytes:
    """``message`` as one frame on the pipe."""
    payload = msgspec.msgpack.encode(message)
    return len(payload).to_bytes(FRAME_LENGTH, "big") + payload


def _write(stream: BinaryIO, message: msgspec.Struct) -> None:
    stream.write(encode_frame(message))
    stream.flush()


def _read_frame(stream: BinaryIO) -> bytes | None:
    """The payload of the next frame on ``stream``; None at its end."""
    header = stream.read(FRAME_LENGTH)
    if len(header) < FRAME_LENGTH:
        return None
    return stream.read(int.from_bytes(header, "big"))


def serve(memory: int) -> None:
    """Make thumbnails for the jobs on stdin until it closes, within ``memory`` bytes
    (0: no limit). An empty outcome frame says the process is ready."""
    if memory:
        resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when this ends
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # what a library prints goes to the log, never into the replies
    import av  # noqa: F401  # loaded once, not per thumbnail
    from PIL import Image  # noqa: F401

    _write(replies, ThumbnailOutcome(made=False))
    decode = msgspec.msgpack.Decoder(ThumbnailJob).decode
    while (payload := _read_frame(sys.stdin.buffer)) is not None:
        _write(replies, _attempt(decode(payload), memory))


if __name__ == "__main__":
    serve(int(sys.argv[1]))
