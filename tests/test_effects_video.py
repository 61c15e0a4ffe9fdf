"""The effects on real short clips: per-frame effects keep the frame count and audio,
and segment, speed and concatenate give the durations they promise."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from l1.assets import asset_path
from l1.effects import Effect, RenderContext
from l1.effects.catalogue import frame_effects, media_effects
from l1.effects.media.pipeline import map_frames
from l1.effects.media.probe import MediaError, probe
from l1.effects.params import VideoEncoding
from l1.errors import Unprocessable
from tests.media import decode_frames, make_clip, make_image, mdat_payload, stream_summary

EFFECTS: dict[str, Effect] = {effect.name: effect for effect in media_effects()}
FPS = 24
FRAME = 1 / FPS

# Parameters for each per-frame effect, and the frame size it should give a 160x120 clip.
FRAME_CASES: dict[str, tuple[dict[str, Any], tuple[int, int]]] = {
    "grayscale": ({}, (160, 120)),
    "invert": ({}, (160, 120)),
    "sepia": ({}, (160, 120)),
    "blur": ({"radius": 3}, (160, 120)),
    "sharpen": ({"amount": 5}, (160, 120)),
    "brightness": ({"factor": 1.6}, (160, 120)),
    "contrast": ({"factor": 2.0}, (160, 120)),
    "saturation": ({"factor": 0.0}, (160, 120)),
    "hue_shift": ({"degrees": 120}, (160, 120)),
    "posterize": ({"bits": 1}, (160, 120)),
    "pixelate": ({"block_size": 16}, (160, 120)),
    "resize": ({"width": 80, "height": 80, "mode": "pad"}, (80, 80)),
    "rotate": ({"degrees": 90}, (120, 160)),
    "flip": ({}, (160, 120)),
    "mirror": ({}, (160, 120)),
    "crop": ({"left": 10, "top": 20, "width": 64, "height": 48}, (64, 48)),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One-second clips shared by the module's tests (read-only)."""
    root = tmp_path_factory.mktemp("clips")
    return {
        "main": make_clip(root / "main.mp4", 1.0, 160, 120, FPS, audio=True),
        "silent": make_clip(root / "silent.mp4", 0.5, 200, 100, 30, audio=False),
        "other": make_clip(root / "other.mp4", 0.5, 160, 120, FPS, audio=True),
    }


@pytest.fixture(scope="module")
def source_frames(clips: dict[str, Path]) -> list[np.ndarray]:
    return decode_frames(clips["main"])


def render(name: str, inputs: list[Path], workdir: Path, **params: Any) -> Path:
    """Render effect ``name`` into a fresh directory under ``workdir``; the output path."""
    effect = EFFECTS[name]
    out_dir = workdir / f"out-{len(list(workdir.iterdir()))}"
    out_dir.mkdir()
    return effect.load()(inputs, out_dir, effect.parse_params(params), RenderContext())


def difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# --- Per-frame effects on video ---------------------------------------------------


def test_every_frame_effect_has_a_video_case() -> None:
    assert set(FRAME_CASES) == {spec.name for spec in frame_effects()}


@pytest.mark.parametrize("name", sorted(FRAME_CASES))
def test_frame_effect_keeps_frames_and_audio(
    name: str, clips: dict[str, Path], source_frames: list[np.ndarray], tmp_path: Path
) -> None:
    params, size = FRAME_CASES[name]
    output = render(name, [clips["main"]], tmp_path, **params)
    summary = stream_summary(output)
    source = stream_summary(clips["main"])
    assert (summary["codec"], summary["pix_fmt"]) == ("h264", "yuv420p")
    assert (summary["width"], summary["height"]) == size
    assert summary["frames"] == source["frames"] == 24
    assert summary["audio_codec"] == "aac"
    assert summary["audio_seconds"] == pytest.approx(source["audio_seconds"], abs=0.03)
    first = decode_frames(output)[0]
    if first.shape == source_frames[0].shape:
        assert difference(first, source_frames[0]) > 2, "the effect changed nothing"


def test_grayscale_frames_have_equal_channels(clips: dict[str, Path], tmp_path: Path) -> None:
    frame = decode_frames(render("grayscale", [clips["main"]], tmp_path))[12].astype(np.int16)
    assert np.abs(frame[..., 0] - frame[..., 1]).max() <= 6
    assert np.abs(frame[..., 1] - frame[..., 2]).max() <= 6
    assert frame.std() > 20


def test_invert_frames_are_negatives(
    clips: dict[str, Path], source_frames: list[np.ndarray], tmp_path: Path
) -> None:
    frame = decode_frames(render("invert", [clips["main"]], tmp_path))[5]
    assert difference(frame, 255 - source_frames[5]) < 4


def test_geometry_on_frames(
    clips: dict[str, Path], source_frames: list[np.ndarray], tmp_path: Path
) -> None:
    flipped = decode_frames(render("flip", [clips["main"]], tmp_path))[3]
    assert difference(flipped, source_frames[3][::-1]) < 4
    turned = decode_frames(render("rotate", [clips["main"]], tmp_path, degrees=90))[3]
    assert difference(turned, np.rot90(source_frames[3], k=-1)) < 4
    params, _ = FRAME_CASES["crop"]
    cropped = decode_frames(render("crop", [clips["main"]], tmp_path, **params))[3]
    assert difference(cropped, source_frames[3][20:68, 10:74]) < 4


def test_audio_is_copied_bit_for_bit(clips: dict[str, Path], tmp_path: Path) -> None:
    output = render("mirror", [clips["main"]], tmp_path)
    assert _audio_packets(output) == _audio_packets(clips["main"])


def test_no_audio_in_gives_no_audio_out(clips: dict[str, Path], tmp_path: Path) -> None:
    output = render("sepia", [clips["silent"]], tmp_path)
    summary = stream_summary(output)
    assert summary["audio_codec"] is None and summary["frames"] == 15
    assert probe(output).has_audio is False


def test_odd_sizes_are_rounded_to_even(clips: dict[str, Path], tmp_path: Path) -> None:
    output = render("resize", [clips["main"]], tmp_path, width=101, height=77, mode="stretch")
    assert (stream_summary(output)["width"], stream_summary(output)["height"]) == (100, 76)


def test_progress_rises_to_one_hundred(clips: dict[str, Path], tmp_path: Path) -> None:
    seen: list[float] = []
    effect = EFFECTS["blur"]
    effect.load()(
        [clips["main"]], tmp_path, effect.parse_params({}), RenderContext(progress=seen.append)
    )
    assert seen == sorted(seen) and len(seen) >= 10 and seen[-1] == 100.0


def test_encoder_settings_apply(clips: dict[str, Path], tmp_path: Path) -> None:
    fine = render("invert", [clips["main"]], tmp_path, encoding={"crf": 12})
    coarse = render("invert", [clips["main"]], tmp_path, encoding={"crf": 45, "preset": "fast"})
    assert fine.stat().st_size > coarse.stat().st_size * 1.5
    with pytest.raises(Unprocessable, match="preset"):
        EFFECTS["invert"].parse_params({"encoding": {"preset": "warp"}})


# --- Video-only effects -----------------------------------------------------------


def test_segment_gives_the_asked_duration(
    clips: dict[str, Path], source_frames: list[np.ndarray], tmp_path: Path
) -> None:
    output = render("segment", [clips["main"]], tmp_path, start=0.25, duration=0.5)
    summary = stream_summary(output)
    assert summary["seconds"] == pytest.approx(0.5, abs=FRAME)
    assert summary["audio_seconds"] == pytest.approx(0.5, abs=0.05)
    first = decode_frames(output)[0]
    # It starts at source frame 6 (0.25 s), not at the beginning.
    assert difference(first, source_frames[6]) < difference(first, source_frames[0])


def test_segment_without_duration_runs_to_the_end(clips: dict[str, Path], tmp_path: Path) -> None:
    output = render("segment", [clips["main"]], tmp_path, start=0.5)
    assert stream_summary(output)["seconds"] == pytest.approx(0.5, abs=FRAME)


def test_segment_past_the_end_is_refused(clips: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="clip lasts"):
        render("segment", [clips["main"]], tmp_path, start=5.0, duration=1.0)


@pytest.mark.parametrize(("factor", "frames"), [(2.0, 12), (0.5, 48)])
def test_speed_scales_duration(
    factor: float, frames: int, clips: dict[str, Path], tmp_path: Path
) -> None:
    summary = stream_summary(render("speed", [clips["main"]], tmp_path, factor=factor))
    assert summary["frames"] == frames
    assert summary["fps"] == FPS
    assert summary["audio_seconds"] == pytest.approx(1.0 / factor, abs=0.05)


def test_concatenate_duration_is_the_sum(clips: dict[str, Path], tmp_path: Path) -> None:
    output = render("concatenate", [clips["main"], clips["silent"]], tmp_path)
    summary = stream_summary(output)
    assert (summary["width"], summary["height"], summary["fps"]) == (160, 120, FPS)
    assert summary["seconds"] == pytest.approx(1.5, abs=FRAME)
    # The silent second clip contributes silence, so audio covers the whole video.
    assert summary["audio_seconds"] == pytest.approx(1.5, abs=0.05)


def test_concatenate_two_clips_with_audio(clips: dict[str, Path], tmp_path: Path) -> None:
    output = render("concatenate", [clips["other"], clips["main"]], tmp_path)
    summary = stream_summary(output)
    assert summary["seconds"] == pytest.approx(1.5, abs=FRAME)
    assert summary["audio_seconds"] == pytest.approx(1.5, abs=0.05)


# --- Refusals and the shipped clip -----------------------------------------------


def test_video_effects_refuse_images_and_non_media(tmp_path: Path) -> None:
    picture = make_image(tmp_path / "picture.png")
    with pytest.raises(MediaError, match="takes video input"):
        render("speed", [picture], tmp_path)
    garbage = tmp_path / "clip.mp4"
    garbage.write_bytes(b"\x00\x01binary but not media" * 100)
    with pytest.raises(MediaError):
        render("segment", [garbage], tmp_path)
    with pytest.raises(MediaError):
        render("grayscale", [garbage], tmp_path)


def test_truncated_video_is_refused(clips: dict[str, Path], tmp_path: Path) -> None:
    whole = clips["main"].read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(whole[: len(whole) // 3])
    with pytest.raises(MediaError):
        render("invert", [truncated], tmp_path)


def test_corrupt_video_data_is_refused(clips: dict[str, Path], tmp_path: Path) -> None:
    data = bytearray(clips["main"].read_bytes())
    # Only the frame data is spoiled, so the index stays intact whatever the box layout.
    start, end = mdat_payload(bytes(data))
    middle = range(start + (end - start) * 35 // 100, start + (end - start) * 65 // 100)
    data[middle.start : middle.stop] = b"\xff" * len(middle)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(bytes(data))
    assert probe(corrupt).kind == "video"  # the index is intact; the frames are not
    for name in ("grayscale", "speed"):
        with pytest.raises(MediaError, match="could not be decoded"):
            render(name, [corrupt], tmp_path)


def test_a_failing_frame_stops_the_reader(clips: dict[str, Path], tmp_path: Path) -> None:
    seen: list[int] = []

    def fail_on_fifth(picture: Image.Image) -> Image.Image:
        seen.append(1)
        if len(seen) == 6:  # the first call only sizes the output
            raise RuntimeError("frame five")
        return picture

    with pytest.raises(RuntimeError, match="frame five"):
        map_frames(clips["main"], tmp_path, fail_on_fifth, VideoEncoding(), RenderContext())
    assert not [t for t in threading.enumerate() if t.name == "l1-video-read"]


def test_shipped_clip() -> None:
    clip = asset_path_clip()
    info = probe(clip)
    assert (info.kind, info.width, info.height, info.fps) == ("video", 320, 240, 24.0)
    assert info.duration == pytest.approx(3.0, abs=FRAME) and info.has_audio
    assert clip.stat().st_size < 300_000
    summary = stream_summary(clip)
    assert (summary["codec"], summary["audio_codec"]) == ("h264", "aac")


def asset_path_clip() -> Path:
    """``l1/assets/clip.mp4``, next to the shipped pictures."""
    return asset_path("dog").parent / "clip.mp4"


def _audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]
