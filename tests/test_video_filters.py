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
from l1.effects.media.filters import FilterChain
from l1.effects.media.probe import MediaError
from l1.effects.params import SepiaParams
from l1.effects.render.frames import FrameEffect, Sepia
from tests.media import decode_frames, make_clip, pattern, stream_summary

EFFECTS = {effect.name: effect for effect in frame_effects()}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-second 160x120 clip at 24 fps with a tone (read-only)."""
    return make_clip(tmp_path_factory.mktemp("filters") / "clip.mp4", 1.0, 160, 120, 24)


@pytest.fixture(scope="module")
def source(clip: Path) -> list[np.ndarray]:
    return decode_frames(clip)


def frame_effect(name: str) -> FrameEffect[Any]:
    """The per-frame effect ``name``, loaded."""
    loaded = EFFECTS[name].load()
    assert isinstance(loaded, FrameEffect)
    return loaded


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


def test_every_frame_effect_filters_video() -> None:
    size = (160, 120)
    for name, effect in EFFECTS.items():
        examples = [params for case, params, _ in MATCH_CASES if case == name]
        params = effect.parse_params(examples[0] if examples else {})
        assert frame_effect(effect.name).video_filter(params, size), name
    # Past what libavfilter's unsharp reaches, the mask stays with Pillow.
    sharpen = EFFECTS["sharpen"]
    for wide in ({"radius": 10}, {"amount": 8}):
        assert frame_effect("sharpen").video_filter(sharpen.parse_params(wide), size) is None


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


@pytest.mark.parametrize("name", ["flip", "sharpen"])
def test_tagged_sources_look_the_same_through_either_path(name: str, tmp_path: Path) -> None:
    # A wide sharpen of amount 0 changes nothing, through Pillow; flip, through libavfilter.
    tags = {"colorspace": 1, "color_primaries": 1, "color_trc": 1, "color_range": 2}
    source = _write_clip(tmp_path / "hd.mp4", (64, 48), "libx264", "yuv420p", tags=tags)
    wide = {"radius": 10, "amount": 0} if name == "sharpen" else {}
    output = render(name, source, tmp_path, **wide)
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


# Each effect whose video chain is checked against its picture path: its params, and
# the largest mean difference (0-255 levels) allowed between the two on a middle
# frame. Both outputs are lossless (crf 0), so what differs is the YUV 4:2:0 round
# trip, each filter's own rounding, and where filters mix neighbours, libavfilter
# working on half-resolution Cb and Cr where Pillow has full RGB. Measured on the
# clip below: 0.5 (pixelate) to 2.4 (sharpen), against changes of 15 to 35; posterize
# (1.8) also flips a whole step of 32 wherever the round trip moves a value across
# one. The bounds leave about 1.5x what was measured. Rotate differs by its kernel,
# bilinear in libavfilter and bicubic in Pillow: 4.9 on the clip's sharp block
# edges (1.9 against Pillow's own bilinear turn).
MATCH_CASES: list[tuple[str, dict[str, Any], float]] = [
    ("sharpen", {"radius": 1.5, "amount": 2.0}, 3.5),
    ("brightness", {"factor": 1.3}, 2.0),
    ("contrast", {"factor": 1.5}, 2.0),
    ("hue_shift", {"degrees": 90}, 2.0),
    ("posterize", {"bits": 3}, 3.0),
    ("pixelate", {"block_size": 8}, 1.5),
    ("resize", {"width": 48, "height": 40, "mode": "stretch"}, 2.0),
    # Padded at an odd offset (3, 0), which pad alone would round to 2. The picture's
    # first and last columns then share their colour samples with the pad (4:2:0), and
    # libavfilter's conversion of the pad colour lands 2 levels off: measured 2.7.
    ("resize", {"width": 59, "height": 40, "mode": "pad", "pad_color": "#336699"}, 4.0),
    ("resize", {"width": 40, "height": 40, "mode": "fill"}, 2.0),
    ("rotate", {"degrees": 30}, 6.5),
    ("crop", {"left": 8, "top": 6, "width": 40, "height": 30}, 1.0),
]


@pytest.fixture(scope="module")
def lossless(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A silent 64x48 clip of 12 frames: 4x4 blocks of random greys over the test
    pattern's colour ramps, encoded losslessly (read-only). The blocks give every
    filter detail to work on; the colour stays smooth, as 4:2:0 can hold it."""
    rng = np.random.default_rng(7)
    blocks = np.kron(rng.integers(0, 160, (12, 16, 1)), np.ones((4, 4, 1), np.int64))
    picture = (pattern(64, 48) // 3 + blocks).clip(0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("lossless") / "clip.mp4"
    return _write_clip(path, (64, 48), "libx264", "yuv420p", picture=picture, crf=0)


@pytest.mark.parametrize(("name", "params", "tolerance"), MATCH_CASES)
def test_video_chains_match_the_picture_path(
    name: str, params: dict[str, Any], tolerance: float, lossless: Path, tmp_path: Path
) -> None:
    source = decode_frames(lossless)[6]
    video = decode_frames(render(name, lossless, tmp_path, encoding={"crf": 0}, **params))[6]
    effect = EFFECTS[name]
    picture = np.asarray(
        frame_effect(effect.name).picture(Image.fromarray(source), effect.parse_params(params))
    )
    # The video is cut to even sides; the picture is compared over what the video kept.
    height, width = video.shape[:2]
    assert (picture.shape[0] - height, picture.shape[1] - width) in ((0, 0), (0, 1), (1, 0), (1, 1))
    picture = picture[:height, :width]
    if name == "rotate":
        # The turned picture's rim is a bicubic edge against the fill in Pillow and a
        # bilinear one in libavfilter: up to the whole step to the fill colour there.
        # Its inside is compared.
        video, picture = _middle(video), _middle(picture)
    assert difference(video, picture) < tolerance, name
    if picture.shape == source.shape:
        assert difference(picture, source) > 2 * tolerance, name  # the effect shows


def test_brightness_and_contrast_of_a_full_range_source(tmp_path: Path) -> None:
    tags = {"colorspace": 1, "color_primaries": 1, "color_trc": 1, "color_range": 2}
    source = _write_clip(tmp_path / "full.mp4", (64, 48), "libx264", "yuv420p", tags=tags)
    original = decode_frames(source)[5]
    for name, factor in (("brightness", 0.5), ("contrast", 0.5)):
        frame = decode_frames(render(name, source, tmp_path, factor=factor))[5]
        effect = EFFECTS[name]
        expected = frame_effect(effect.name).picture(
            Image.fromarray(original), effect.parse_params({"factor": factor})
        )
        assert difference(frame, np.asarray(expected)) < 3, name


def test_hue_shift_turns_red_green_on_both_paths(tmp_path: Path) -> None:
    red = np.zeros((48, 64, 3), np.uint8)
    red[..., 0] = 220
    source = _write_clip(tmp_path / "red.mp4", (64, 48), "libx264", "yuv420p", picture=red)
    r, g, b = decode_frames(render("hue_shift", source, tmp_path, degrees=120))[3][24, 32]
    assert g > r + 60 and g > b + 60
    effect = EFFECTS["hue_shift"]
    still = frame_effect(effect.name).picture(
        Image.fromarray(red), effect.parse_params({"degrees": 120})
    )
    r, g, b = np.asarray(still)[24, 32].astype(int)
    assert g > r + 60 and g > b + 60


SIZE_CASES: list[tuple[str, dict[str, Any]]] = [
    ("resize", {"width": 50, "height": 50, "mode": mode})
    for mode in ("fit", "fill", "stretch", "pad")
] + [
    ("resize", {"width": 37, "height": 61, "mode": "fill"}),
    ("resize", {"width": 37, "height": 61, "mode": "pad", "pad_color": "#336699"}),
    ("resize", {"width": 90}),
    ("rotate", {"degrees": 30}),
    ("rotate", {"degrees": -45}),
    ("rotate", {"degrees": 100, "expand": False}),
    ("pixelate", {"block_size": 7}),
]


@pytest.mark.parametrize(("name", "params"), SIZE_CASES)
def test_video_sizes_follow_the_picture_path(
    name: str, params: dict[str, Any], lossless: Path, tmp_path: Path
) -> None:
    effect = EFFECTS[name]
    still = (
        frame_effect(effect.name)
        .picture(Image.new("RGB", (64, 48)), effect.parse_params(params))
        .size
    )
    summary = stream_summary(render(name, lossless, tmp_path, **params))
    # yuv420p holds even sides only: the video drops the last odd row or column.
    assert (summary["width"], summary["height"]) == (
        still[0] - still[0] % 2,
        still[1] - still[1] % 2,
    )


@pytest.mark.parametrize(
    ("name", "params"),
    [(name, params) for name, params, _ in MATCH_CASES] + SIZE_CASES,
)
@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuvj420p", "yuv420p10le"])
def test_chains_build_for_odd_frames_of_any_range_and_depth(
    name: str, params: dict[str, Any], pix_fmt: str
) -> None:
    size = (161, 121)
    effect = EFFECTS[name]
    description = frame_effect(name).video_filter(effect.parse_params(params), size)
    assert description is not None
    blank = av.VideoFrame(*size, pix_fmt)
    blank.pts, blank.time_base = 0, Fraction(1, 24)
    chain = FilterChain(description, Fraction(1, 24))
    made = chain.push(blank) + chain.flush()
    still = frame_effect(name).picture(Image.new("RGB", size), effect.parse_params(params))
    # Before the even-size cut of the output, the frame is exactly the picture's size.
    assert [(frame.width, frame.height, frame.format.name) for frame in made] == [
        (*still.size, "yuv420p")
    ]


def _middle(frame: np.ndarray) -> np.ndarray:
    """The central half of ``frame`` in each direction."""
    height, width = frame.shape[:2]
    return frame[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4]


def _write_clip(
    path: Path,
    size: tuple[int, int],
    codec: str,
    pix_fmt: str,
    *,
    frames: int = 12,
    tags: dict[str, int] | None = None,
    picture: np.ndarray | None = None,
    crf: int | None = None,
) -> Path:
    """A silent clip of the test pattern with the given codec, pixel format and tags."""
    with av.open(str(path), "w") as output:
        options = {} if crf is None else {"crf": str(crf)}
        stream = output.add_stream(codec, rate=24, options=options)
        stream.width, stream.height = size
        stream.pix_fmt = pix_fmt
        for name, value in (tags or {}).items():
            setattr(stream.codec_context, name, value)
        for index in range(frames):
            still = pattern(*size, index) if picture is None else picture
            frame = av.VideoFrame.from_ndarray(still, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, 24)
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return path


def _audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]
