"""The two-input effects: ``blend`` on images and clips (its maths, sizes, frame counts,
looping and audio), and ``mux`` (copied streams, trimmed audio, re-encoding, refusals)."""

from __future__ import annotations

import threading
import wave
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from l1.effects import Effect, RenderContext
from l1.effects.catalogue import media_effects
from l1.effects.identity import effect_hash
from l1.effects.media import probe as media
from l1.effects.render.blend import BLEND_MODES, blend_pixels
from l1.errors import Unprocessable
from tests.media import (
    decode_frames,
    make_audio,
    make_clip,
    make_image,
    mdat_payload,
    pattern,
    stream_summary,
)

EFFECTS: dict[str, Effect] = {effect.name: effect for effect in media_effects()}
FPS = 24

# Each blend mode's result for a base of 0.4 under a top of 0.8 (channels scaled to 0-1).
MODE_CASES: dict[str, float] = {
    "normal": 0.8,
    "multiply": 0.4 * 0.8,
    "screen": 0.4 + 0.8 - 0.4 * 0.8,
    "overlay": 2 * 0.4 * 0.8,
    "add": 1.0,
    "difference": 0.4,
    "lighten": 0.8,
    "darken": 0.4,
}


@pytest.fixture(scope="module")
def media_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Short clips, pictures and sounds shared by the module's tests (read-only)."""
    root = tmp_path_factory.mktemp("compose")
    return {
        "main": make_clip(root / "main.mp4", 1.0, 160, 120, FPS, audio=True),
        "short": make_clip(root / "short.mp4", 0.5, 160, 120, FPS, audio=False),
        "silent": make_clip(root / "silent.mp4", 0.5, 200, 100, 30, audio=False),
        "tone": make_audio(root / "tone.m4a", 2.0),
        "wav": _make_wav(root / "tone.wav", 2.0),
        "huffyuv": _make_huffyuv(root / "lossless.avi", 10),
        "picture": make_image(root / "picture.png", 64, 48),
        "overlay": make_image(root / "overlay.png", 80, 60, mode="RGBA"),
    }


def render(name: str, inputs: list[Path], workdir: Path, **params: Any) -> Path:
    """Render effect ``name`` into a fresh directory under ``workdir``; the output path."""
    effect = EFFECTS[name]
    out_dir = workdir / f"out-{len(list(workdir.iterdir()))}"
    out_dir.mkdir()
    return effect.load()(inputs, out_dir, effect.parse_params(params), RenderContext())


def save(pixels: np.ndarray, path: Path) -> Path:
    Image.fromarray(pixels).save(path, format="PNG")
    return path


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as picture:
        return np.asarray(picture)


def difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# --- Registration -----------------------------------------------------------------


def test_effects_are_registered_with_two_inputs() -> None:
    for name in ("blend", "mux"):
        effect = EFFECTS[name]
        assert effect.inputs == 2 and effect.version == "3"
        expected = effect_hash(name, "3", effect.render)
        assert effect.content_hash == expected
    schema = EFFECTS["blend"].info().params
    assert "opacity" in str(schema) and "encoding" in str(schema)
    with pytest.raises(Unprocessable, match="opacity"):
        EFFECTS["blend"].parse_params({"opacity": 1.5})
    with pytest.raises(Unprocessable, match="mode"):
        EFFECTS["blend"].parse_params({"mode": "dissolve"})


# --- Blend maths on images --------------------------------------------------------


def test_normal_at_opacity_zero_and_one(tmp_path: Path) -> None:
    first = save(pattern(64, 48, 0), tmp_path / "first.png")
    second = save(pattern(64, 48, 9)[::-1].copy(), tmp_path / "second.png")
    none = pixels(render("blend", [first, second], tmp_path, opacity=0.0))
    full = pixels(render("blend", [first, second], tmp_path, opacity=1.0))
    half = pixels(render("blend", [first, second], tmp_path))
    assert np.array_equal(none, pixels(first))
    assert np.array_equal(full, pixels(second))
    average = (pixels(first).astype(np.int16) + pixels(second)) / 2
    assert np.abs(half - average).max() <= 1


def test_multiply_with_white_is_identity(tmp_path: Path) -> None:
    first = save(pattern(64, 48, 3), tmp_path / "first.png")
    white = save(np.full((30, 40, 3), 255, np.uint8), tmp_path / "white.png")
    for opacity in (0.5, 1.0):
        out = render("blend", [first, white], tmp_path, mode="multiply", opacity=opacity)
        assert np.array_equal(pixels(out), pixels(first))


def test_difference_with_itself_is_black(tmp_path: Path) -> None:
    first = save(pattern(64, 48, 5), tmp_path / "first.png")
    out = pixels(render("blend", [first, first], tmp_path, mode="difference", opacity=1.0))
    assert out.shape == (48, 64, 3) and out.max() == 0


def test_second_image_is_resized_to_the_first(tmp_path: Path) -> None:
    first = save(pattern(64, 48), tmp_path / "first.png")
    grey = save(np.full((300, 17, 3), 128, np.uint8), tmp_path / "grey.png")
    out = pixels(render("blend", [first, grey], tmp_path, opacity=1.0))
    assert out.shape == (48, 64, 3) and np.abs(out.astype(np.int16) - 128).max() <= 1


def test_transparent_overlay_changes_nothing(tmp_path: Path) -> None:
    first = save(pattern(64, 48, 2), tmp_path / "first.png")
    clear = save(np.zeros((48, 64, 4), np.uint8), tmp_path / "clear.png")
    out = render("blend", [first, clear], tmp_path, mode="screen", opacity=1.0)
    assert np.array_equal(pixels(out), pixels(first))


def test_transparent_base_keeps_its_alpha(media_files: dict[str, Path], tmp_path: Path) -> None:
    overlay = media_files["overlay"]
    out = pixels(render("blend", [overlay, media_files["picture"]], tmp_path, opacity=0.0))
    assert out.shape == (60, 80, 4)
    assert np.array_equal(out[..., 3], pixels(overlay)[..., 3])


@pytest.mark.parametrize(("mode", "expected"), sorted(MODE_CASES.items()))
def test_each_mode_on_one_pixel(mode: Any, expected: float) -> None:
    base = np.full((2, 2, 3), round(0.4 * 255), np.uint8)
    top = np.full((2, 2, 3), round(0.8 * 255), np.uint8)
    result = blend_pixels(base, top, mode, opacity=1.0)
    assert np.abs(result.astype(np.int16) - round(expected * 255)).max() <= 1
    half = blend_pixels(base, top, mode, opacity=0.5)
    assert abs(int(half[0, 0, 0]) - round((0.4 + expected) / 2 * 255)) <= 1


def test_every_mode_has_a_case() -> None:
    assert set(MODE_CASES) == set(BLEND_MODES)


# --- Blend on video ---------------------------------------------------------------


def test_video_blend_keeps_frames_size_and_audio(
    media_files: dict[str, Path], tmp_path: Path
) -> None:
    for second in ("silent", "overlay"):
        out = render("blend", [media_files["main"], media_files[second]], tmp_path, mode="overlay")
        summary = stream_summary(out)
        assert (summary["codec"], summary["width"], summary["height"]) == ("h264", 160, 120)
        assert summary["frames"] == 24 and summary["fps"] == FPS
        assert _audio_packets(out) == _audio_packets(media_files["main"])


def test_video_blend_with_itself_is_in_step(media_files: dict[str, Path], tmp_path: Path) -> None:
    clip = media_files["main"]
    out = render("blend", [clip, clip], tmp_path, mode="difference", opacity=1.0)
    frames = decode_frames(out)
    assert len(frames) == 24 and max(float(f.mean()) for f in frames) < 2


def test_image_overlay_applies_to_every_frame(media_files: dict[str, Path], tmp_path: Path) -> None:
    black = save(np.zeros((10, 10, 3), np.uint8), tmp_path / "black.png")
    out = render("blend", [media_files["main"], black], tmp_path, mode="multiply", opacity=1.0)
    assert max(float(f.max()) for f in decode_frames(out)) < 20


def test_shorter_second_clip_loops_or_holds(media_files: dict[str, Path], tmp_path: Path) -> None:
    main, short = media_files["main"], media_files["short"]
    short_frames = decode_frames(short)
    assert len(short_frames) == 12
    looped = decode_frames(render("blend", [main, short], tmp_path, opacity=1.0))
    held = decode_frames(render("blend", [main, short], tmp_path, opacity=1.0, shorter="hold"))
    assert len(looped) == len(held) == 24
    assert difference(looped[5], short_frames[5]) < 3
    assert difference(looped[18], short_frames[6]) < 3
    assert difference(held[18], short_frames[11]) < 3
    assert difference(held[18], short_frames[6]) > 10


# --- Mux --------------------------------------------------------------------------


def test_mux_copies_video_and_trims_audio(media_files: dict[str, Path], tmp_path: Path) -> None:
    out = render("mux", [media_files["silent"], media_files["tone"]], tmp_path)
    summary = stream_summary(out)
    assert (summary["codec"], summary["width"], summary["height"]) == ("h264", 200, 100)
    assert summary["frames"] == 15
    assert summary["audio_codec"] == "aac"
    assert summary["audio_seconds"] == pytest.approx(summary["seconds"], abs=0.05)
    assert _packets(out, "video") == _packets(media_files["silent"], "video")
    source_audio = _packets(media_files["tone"], "audio")
    assert _packets(out, "audio") == source_audio[: len(_packets(out, "audio"))]


def test_mux_takes_audio_from_a_video(media_files: dict[str, Path], tmp_path: Path) -> None:
    out = render("mux", [media_files["short"], media_files["main"]], tmp_path)
    summary = stream_summary(out)
    assert summary["frames"] == 12
    assert summary["audio_seconds"] == pytest.approx(0.5, abs=0.05)


def test_mux_reencodes_what_mp4_cannot_hold(media_files: dict[str, Path], tmp_path: Path) -> None:
    out = render("mux", [media_files["huffyuv"], media_files["wav"]], tmp_path)
    summary = stream_summary(out)
    assert (summary["codec"], summary["audio_codec"]) == ("h264", "aac")
    assert summary["frames"] == 10
    assert summary["audio_seconds"] == pytest.approx(10 / FPS, abs=0.05)


# --- Refusals ---------------------------------------------------------------------


def test_wrong_media_kinds_are_refused(media_files: dict[str, Path], tmp_path: Path) -> None:
    main, picture, tone = media_files["main"], media_files["picture"], media_files["tone"]
    with pytest.raises(media.MediaError, match="first input is image"):
        render("mux", [picture, tone], tmp_path)
    with pytest.raises(media.MediaError, match="first input is audio"):
        render("mux", [tone, main], tmp_path)
    with pytest.raises(media.MediaError, match="without audio"):
        render("mux", [main, media_files["silent"]], tmp_path)
    with pytest.raises(media.MediaError, match="second input is image"):
        render("mux", [main, picture], tmp_path)
    with pytest.raises(media.MediaError, match="takes image or video input"):
        render("blend", [main, tone], tmp_path)
    with pytest.raises(media.MediaError, match="put the video first"):
        render("blend", [picture, main], tmp_path)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not media at all" * 50)
    with pytest.raises(media.MediaError):
        render("blend", [picture, garbage], tmp_path)


def test_undecodable_second_clip_stops_both_readers(
    media_files: dict[str, Path], tmp_path: Path
) -> None:
    data = bytearray(media_files["short"].read_bytes())
    # Spoil the middle of the frame data only, so the container still opens and the
    # failure comes from decoding, whatever the encoder's box layout.
    start, end = mdat_payload(bytes(data))
    low, high = start + (end - start) * 30 // 100, start + (end - start) * 70 // 100
    data[low:high] = b"\xff" * (high - low)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(bytes(data))
    with pytest.raises(media.MediaError, match="could not be decoded"):
        render("blend", [media_files["main"], corrupt], tmp_path)
    assert not [t for t in threading.enumerate() if t.name == "l1-video-read"]


# --- Helpers ----------------------------------------------------------------------


def _packets(path: Path, kind: str) -> list[bytes]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0] if kind == "video" else container.streams.audio[0]
        return [bytes(p) for p in container.demux(stream) if p.size]


def _audio_packets(path: Path) -> list[bytes]:
    return _packets(path, "audio")


def _make_wav(path: Path, seconds: float, rate: int = 22_050) -> Path:
    """An 8-bit PCM WAV tone: a codec MP4 cannot hold, so mux re-encodes it."""
    t = np.arange(round(seconds * rate)) / rate
    samples = (128 + 60 * np.sin(2 * np.pi * 440 * t)).astype(np.uint8)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def _make_huffyuv(path: Path, frames: int) -> Path:
    """An AVI clip in HuffYUV: a video codec MP4 cannot hold, so mux re-encodes it."""
    with av.open(str(path), "w", format="avi") as output:
        stream = output.add_stream("huffyuv", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv422p"
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern(64, 48, index), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return path
