"""The per-frame effects that filter video in YUV through libavfilter: what their frames
look like, what the output keeps (frames, audio, colour tags) and odd inputs."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from l1.effects import RenderContext
from l1.effects.catalogue import frame_effects
from l1.effects.media.probe import MediaError
from l1.effects.params import SepiaParams
from l1.effects.render.frames import Sepia
from tests.media import decode_frames, make_clip, pattern, stream_summary

EFFECTS = {effect.name: effect for effect in frame_effects()}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-second 160x120 clip at 24 fps with a tone (read-only)."""
    return make_clip(tmp_path_factory.mktemp("filters") / "clip.mp4", 1.0, 160, 120, 24)


@pytest.fixture(scope="module")
def source(clip: Path) -> list[np.ndarray]:
    return decode_frames(clip)


def render(name: str, source: Path, workdir: Path, **params: Any) -> Path:
    effect = EFFECTS[name]
    out = workdir / f"{name}-{len(list(workdir.iterdir()))}"
    out.mkdir()
    return effect.load()([source], out, effect.parse_params(params), RenderContext())


def planes(path: Path) -> list[list[np.ndarray]]:
    """Y, U and V of every frame as decoded (yuv420p, no conversion to RGB)."""
    with av.open(str(path)) as container:
        return [
            [
                np.frombuffer(bytes(plane), np.uint8)
                .reshape(plane.height, plane.line_size)[:, : plane.width]
                .astype(np.int16)
                for plane in frame.planes
            ]
            for frame in container.decode(video=0)
        ]


def difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def sharpest_edge(luma: np.ndarray) -> int:
    """The largest step between neighbouring pixels (the sliding square's edge)."""
    return int(max(np.abs(np.diff(luma, axis=0)).max(), np.abs(np.diff(luma, axis=1)).max()))


def test_the_common_effects_filter_video() -> None:
    size = (160, 120)
    for name in ("grayscale", "invert", "sepia", "blur", "flip", "mirror", "crop"):
        effect = EFFECTS[name]
        assert effect.load().video_filter(effect.parse_params({}), size), name
    # No libavfilter match: a turn that resamples stays with Pillow.
    rotate = EFFECTS["rotate"]
    assert rotate.load().video_filter(rotate.parse_params({"degrees": 30}), size) is None


def test_grayscale_has_neutral_chroma_and_keeps_luma(clip: Path, tmp_path: Path) -> None:
    output = planes(render("grayscale", clip, tmp_path))
    original = planes(clip)
    assert len(output) == len(original) == 24
    for (y, u, v), (y0, _, _) in zip(output[::6], original[::6], strict=True):
        assert np.abs(u - 128).max() <= 2 and np.abs(v - 128).max() <= 2
        assert difference(y, y0) < 3
        assert y.std() > 20  # still a picture, not a flat grey


def test_blur_removes_detail_and_keeps_the_picture(clip: Path, tmp_path: Path) -> None:
    output = planes(render("blur", clip, tmp_path, radius=3))
    original = planes(clip)
    for (y, _, _), (y0, _, _) in zip(output[::6], original[::6], strict=True):
        assert sharpest_edge(y) < 0.5 * sharpest_edge(y0)
        assert abs(float(y.mean()) - float(y0.mean())) < 3  # blur moves light, keeps it


def test_blur_of_radius_zero_changes_nothing_but_the_encoding(
    clip: Path, source: list[np.ndarray], tmp_path: Path
) -> None:
    frames = decode_frames(render("blur", clip, tmp_path, radius=0))
    assert difference(frames[7], source[7]) < 3


def test_sepia_matches_the_picture_effect(
    clip: Path, source: list[np.ndarray], tmp_path: Path
) -> None:
    frames = decode_frames(render("sepia", clip, tmp_path))
    expected = Sepia().picture(Image.fromarray(source[10]), SepiaParams())
    assert difference(frames[10], np.asarray(expected)) < 6
    red, green, blue = (frames[10][..., c].astype(np.int16) for c in range(3))
    assert (red >= green - 6).all() and (green >= blue - 6).all()


def test_flips_and_turns_move_pixels_exactly(
    clip: Path, source: list[np.ndarray], tmp_path: Path
) -> None:
    cases = {
        ("mirror", ()): source[4][:, ::-1],
        ("flip", ()): source[4][::-1],
        ("rotate", (("degrees", 90),)): np.rot90(source[4], k=-1),
        ("rotate", (("degrees", 180),)): source[4][::-1, ::-1],
        ("rotate", (("degrees", -90),)): np.rot90(source[4], k=1),
    }
    for (name, params), expected in cases.items():
        frame = decode_frames(render(name, clip, tmp_path, **dict(params)))[4]
        assert frame.shape == expected.shape, (name, params)
        assert difference(frame, expected) < 4, (name, params)
        if frame.shape == source[4].shape:
            assert difference(frame, source[4]) > 10, (name, params)


def test_frames_audio_and_duration_survive(clip: Path, tmp_path: Path) -> None:
    output = render("grayscale", clip, tmp_path)
    summary, original = stream_summary(output), stream_summary(clip)
    assert summary["frames"] == original["frames"] == 24
    assert summary["fps"] == original["fps"] == 24
    assert summary["seconds"] == pytest.approx(original["seconds"])
    assert _audio_packets(output) == _audio_packets(clip)


def test_odd_crop_offsets_and_sizes(clip: Path, source: list[np.ndarray], tmp_path: Path) -> None:
    output = render("crop", clip, tmp_path, left=11, top=21, width=63, height=47)
    summary = stream_summary(output)
    # yuv420p needs even sides: the last column and row go.
    assert (summary["width"], summary["height"]) == (62, 46)
    frame = decode_frames(output)[3]
    assert difference(frame, source[3][21:67, 11:73]) < 5


def test_a_crop_box_outside_the_video_is_refused(clip: Path, tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="does not fit in the 160x120 picture"):
        render("crop", clip, tmp_path, left=100, width=100)


def test_an_odd_sized_rgb_source(tmp_path: Path) -> None:
    # PNG frames in MOV: RGB and 161x121, neither of which H.264 yuv420p can hold.
    source = _write_clip(tmp_path / "odd.mov", (161, 121), "png", "rgb24", frames=6)
    output = render("mirror", source, tmp_path)
    summary = stream_summary(output)
    assert (summary["width"], summary["height"], summary["frames"]) == (160, 120, 6)
    assert summary["pix_fmt"] == "yuv420p"
    expected = pattern(161, 121, 2)[:, ::-1][:120, :160]
    assert difference(decode_frames(output)[2], expected) < 5


def test_colour_tags_follow_the_source(tmp_path: Path) -> None:
    tags = {"colorspace": 1, "color_primaries": 1, "color_trc": 1, "color_range": 1}
    source = _write_clip(tmp_path / "bt709.mp4", (64, 48), "libx264", "yuv420p", tags=tags)
    output = render("flip", source, tmp_path)
    with av.open(str(output)) as container:
        codec = container.streams.video[0].codec_context
        found = {name: int(getattr(codec, name)) for name in tags}
    assert found == tags


@pytest.mark.parametrize(("pix_fmt", "colour_range"), [("yuvj420p", 2), ("yuv420p10le", 0)])
def test_full_range_and_deep_sources_keep_their_look(
    pix_fmt: str, colour_range: int, tmp_path: Path
) -> None:
    source = _write_clip(
        tmp_path / f"{pix_fmt}.mp4",
        (64, 48),
        "libx264",
        pix_fmt,
        tags={"color_range": colour_range},
    )
    output = render("mirror", source, tmp_path)
    with av.open(str(source)) as container:
        tagged = int(container.streams.video[0].codec_context.color_range)
    assert tagged == colour_range  # 2: full range; 0: x264 leaves tv range untagged
    with av.open(str(output)) as container:
        codec = container.streams.video[0].codec_context
        # 8 bits for the encoder, in the range the source's frames are in and say so.
        assert codec.pix_fmt in ("yuv420p", "yuvj420p")
        assert int(codec.color_range) == tagged
    assert difference(decode_frames(output)[3], decode_frames(source)[3][:, ::-1]) < 4


@pytest.mark.parametrize("name", ["flip", "posterize"])
def test_tagged_sources_look_the_same_through_either_path(name: str, tmp_path: Path) -> None:
    # posterize at 8 bits changes nothing, through Pillow; flip, through libavfilter.
    tags = {"colorspace": 1, "color_primaries": 1, "color_trc": 1, "color_range": 2}
    source = _write_clip(tmp_path / "hd.mp4", (64, 48), "libx264", "yuv420p", tags=tags)
    output = render(name, source, tmp_path, **({"bits": 8} if name == "posterize" else {}))
    with av.open(str(output)) as container:
        codec = container.streams.video[0].codec_context
        assert {tag: int(getattr(codec, tag)) for tag in tags} == tags
    expected = decode_frames(source)[5]
    if name == "flip":
        expected = expected[::-1]
    assert difference(decode_frames(output)[5], expected) < 3


def test_a_turn_that_resamples_still_renders_video(clip: Path, tmp_path: Path) -> None:
    summary = stream_summary(render("rotate", clip, tmp_path, degrees=30, expand=False))
    assert (summary["width"], summary["height"], summary["frames"]) == (160, 120, 24)


def _write_clip(
    path: Path,
    size: tuple[int, int],
    codec: str,
    pix_fmt: str,
    *,
    frames: int = 12,
    tags: dict[str, int] | None = None,
) -> Path:
    """A silent clip of the test pattern with the given codec, pixel format and tags."""
    with av.open(str(path), "w") as output:
        stream = output.add_stream(codec, rate=24)
        stream.width, stream.height = size
        stream.pix_fmt = pix_fmt
        for name, value in (tags or {}).items():
            setattr(stream.codec_context, name, value)
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern(*size, index), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, 24)
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return path


def _audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]
