"""Media made on the fly for tests: synthetic images, clips with a sine-tone track,
and readers that decode what the effects wrote.

``python -m tests.media`` writes the shipped sample clip ``l1/assets/clip.mp4``.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

__all__ = [
    "decode_frames",
    "make_audio",
    "make_clip",
    "make_image",
    "pattern",
    "stream_summary",
]

_TONE_HZ = 440.0
_AUDIO_RATE = 44_100
_AUDIO_FRAME = 1024


def pattern(width: int, height: int, index: int = 0) -> np.ndarray:
    """A colourful RGB test picture: red and green ramps, blue moving with ``index``,
    and a white square sliding across."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    picture = np.empty((height, width, 3), dtype=np.uint8)
    picture[..., 0] = np.broadcast_to(x, (height, width)).astype(np.uint8)
    picture[..., 1] = np.broadcast_to(y, (height, width)).astype(np.uint8)
    picture[..., 2] = (index * 8) % 256
    side = max(2, min(width, height) // 4)
    left = (index * 4) % max(1, width - side)
    top = (height - side) // 2
    picture[top : top + side, left : left + side] = 255
    return picture


def make_image(
    path: Path, width: int = 64, height: int = 48, *, mode: str = "RGB", format: str = "PNG"
) -> Path:
    """Write the test pattern as an image; ``mode="RGBA"`` adds a left-to-right alpha ramp."""
    image = Image.fromarray(pattern(width, height))
    if mode == "RGBA":
        alpha = np.broadcast_to(np.linspace(0, 255, width, dtype=np.uint8), (height, width))
        image.putalpha(Image.fromarray(np.ascontiguousarray(alpha)))
    elif mode != "RGB":
        image = image.convert(mode)
    image.save(path, format=format)
    return path


def make_clip(
    path: Path,
    seconds: float = 1.0,
    width: int = 160,
    height: int = 120,
    fps: int = 24,
    audio: bool = True,
    *,
    crf: int = 23,
    preset: str = "veryfast",
) -> Path:
    """Write an H.264/MP4 clip of the moving test pattern, with a 440 Hz AAC tone
    when ``audio``. Video and audio are interleaved as they are made."""
    frames = round(seconds * fps)
    with av.open(str(path), "w", format="mp4") as output:
        video = output.add_stream("libx264", rate=fps, options={"crf": str(crf), "preset": preset})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        tone = _ToneWriter(output) if audio else None
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern(width, height, index), format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            output.mux(video.encode(frame))
            if tone is not None:
                tone.write_until((index + 1) / fps)
        output.mux(video.encode(None))
        if tone is not None:
            tone.finish()
    return path


def make_audio(path: Path, seconds: float = 1.0) -> Path:
    """Write an audio-only M4A file holding the tone."""
    with av.open(str(path), "w", format="mp4") as output:
        tone = _ToneWriter(output)
        tone.write_until(seconds)
        tone.finish()
    return path


class _ToneWriter:
    """A mono sine tone encoded as AAC into ``output``."""

    def __init__(self, output: av.container.OutputContainer) -> None:
        self._output = output
        self._stream = output.add_stream("aac", rate=_AUDIO_RATE)
        self._stream.layout = "mono"
        self._stream.bit_rate = 64_000
        self._samples = 0

    def write_until(self, seconds: float) -> None:
        while self._samples < seconds * _AUDIO_RATE:
            start = self._samples
            t = (np.arange(start, start + _AUDIO_FRAME) / _AUDIO_RATE).astype(np.float32)
            wave = (0.3 * np.sin(2 * math.pi * _TONE_HZ * t)).astype(np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(wave, format="fltp", layout="mono")
            frame.sample_rate = _AUDIO_RATE
            frame.pts = start
            frame.time_base = Fraction(1, _AUDIO_RATE)
            self._samples += _AUDIO_FRAME
            self._output.mux(self._stream.encode(frame))

    def finish(self) -> None:
        self._output.mux(self._stream.encode(None))


def decode_frames(path: Path) -> list[np.ndarray]:
    """Every video frame of ``path`` as an RGB array (for short test clips only)."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def stream_summary(path: Path) -> dict[str, float | int | str | None]:
    """Codec, size, frame count and durations (video and audio) of a clip, decoded exactly."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video=0))
        rate = video.average_rate
        summary: dict[str, float | int | str | None] = {
            "codec": video.codec_context.name,
            "pix_fmt": video.codec_context.pix_fmt,
            "width": video.codec_context.width,
            "height": video.codec_context.height,
            "frames": frames,
            "fps": float(rate) if rate else None,
            "seconds": frames / float(rate) if rate else None,
            "audio_codec": None,
            "audio_seconds": None,
        }
    summary.update(_audio_summary(path))
    return summary


def _audio_summary(path: Path) -> dict[str, float | int | str | None]:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return {}
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(audio=0))
        return {
            "audio_codec": stream.codec_context.name,
            "audio_seconds": samples / stream.codec_context.sample_rate,
        }


if __name__ == "__main__":
    target = Path(__file__).resolve().parent.parent / "l1" / "assets" / "clip.mp4"
    make_clip(target, seconds=3.0, width=320, height=240, fps=24, crf=28, preset="medium")
    print(f"{target}: {target.stat().st_size} bytes")


def mdat_payload(data: bytes) -> tuple[int, int]:
    """Start and end of the top-level ``mdat`` box's payload in an MP4 file."""
    offset = 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        kind = data[offset + 4 : offset + 8]
        header = 8
        if size == 1:
            size, header = int.from_bytes(data[offset + 8 : offset + 16], "big"), 16
        elif size == 0:
            size = len(data) - offset
        if kind == b"mdat":
            return offset + header, offset + size
        offset += size
    raise AssertionError("no mdat box")
