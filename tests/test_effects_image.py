"""The image effects on real images: each changes the pixels the way it says, and bad
media (not an image, a decompression bomb) is refused with MediaError."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from PIL import Image

from l1.effects import Effect, MediaLimits, RenderContext
from l1.effects.catalogue import media_effects
from l1.effects.media.probe import MAX_PIXELS, MediaError, open_image, probe
from l1.errors import Unprocessable
from tests.media import make_audio, make_clip, make_image

EFFECTS: dict[str, Effect] = {effect.name: effect for effect in media_effects()}


def render(name: str, source: Path, workdir: Path, **params: Any) -> Image.Image:
    """Render effect ``name`` on ``source``; the output image, decoded."""
    effect = EFFECTS[name]
    out_dir = workdir / f"out-{name}-{len(list(workdir.iterdir()))}"
    out_dir.mkdir()
    output = effect.load()([source], out_dir, effect.parse_params(params), RenderContext())
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(output)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    return make_image(tmp_path / "picture.png", 64, 48)


@pytest.fixture
def translucent(tmp_path: Path) -> Path:
    return make_image(tmp_path / "translucent.png", 64, 48, mode="RGBA")


# --- Colour effects ---------------------------------------------------------------


def test_grayscale_makes_channels_equal(picture: Path, tmp_path: Path) -> None:
    out = pixels(render("grayscale", picture, tmp_path))
    assert out.shape == (48, 64, 3)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert out.std() > 10  # still a picture, not a flat fill


def test_grayscale_keeps_alpha(translucent: Path, tmp_path: Path) -> None:
    out = render("grayscale", translucent, tmp_path)
    assert out.mode == "RGBA"
    assert (pixels(out)[..., 3] == pixels(Image.open(translucent))[..., 3]).all()


@pytest.mark.parametrize("source", ["picture", "translucent"])
def test_invert_twice_is_identity(
    source: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    original: Path = request.getfixturevalue(source)
    once = render("invert", original, tmp_path)
    assert (pixels(once)[..., :3] == 255 - pixels(Image.open(original))[..., :3]).all()
    once_path = tmp_path / "once.png"
    once.save(once_path)
    twice = render("invert", once_path, tmp_path)
    assert (pixels(twice) == pixels(Image.open(original))).all()


def test_sepia_tones_grey_brown(tmp_path: Path) -> None:
    grey = tmp_path / "grey.png"
    Image.new("RGB", (8, 8), (128, 128, 128)).save(grey)
    red, green, blue = pixels(render("sepia", grey, tmp_path))[0, 0]
    assert red > green > blue
    unchanged = pixels(render("sepia", grey, tmp_path, strength=0.0))
    assert (unchanged == 128).all()


def test_blur_smooths_and_radius_zero_keeps(picture: Path, tmp_path: Path) -> None:
    original = pixels(Image.open(picture))
    blurred = pixels(render("blur", picture, tmp_path, radius=3))
    assert _roughness(blurred) < _roughness(original) * 0.7
    assert (pixels(render("blur", picture, tmp_path, radius=0)) == original).all()


def test_sharpen_adds_edge_contrast(picture: Path, tmp_path: Path) -> None:
    soft = tmp_path / "soft.png"
    render("blur", picture, tmp_path, radius=2).save(soft)
    sharpened = pixels(render("sharpen", soft, tmp_path, amount=2.0))
    assert _roughness(sharpened) > _roughness(pixels(Image.open(soft))) * 1.2


def test_brightness_raises_mean(picture: Path, tmp_path: Path) -> None:
    original = pixels(Image.open(picture))
    assert pixels(render("brightness", picture, tmp_path, factor=1.5)).mean() > original.mean() + 10
    assert pixels(render("brightness", picture, tmp_path, factor=0.5)).mean() < original.mean() - 10
    assert (pixels(render("brightness", picture, tmp_path, factor=1.0)) == original).all()


def test_contrast_spreads_and_flattens(picture: Path, tmp_path: Path) -> None:
    original = pixels(Image.open(picture)).std()
    assert pixels(render("contrast", picture, tmp_path, factor=2.0)).std() > original
    assert pixels(render("contrast", picture, tmp_path, factor=0.3)).std() < original


def test_saturation_zero_is_grey_and_more_is_more(picture: Path, tmp_path: Path) -> None:
    flat = pixels(render("saturation", picture, tmp_path, factor=0.0))
    assert np.abs(flat[..., 0] - flat[..., 2]).max() <= 1
    vivid = pixels(render("saturation", picture, tmp_path, factor=2.0))
    assert _chroma(vivid) > _chroma(pixels(Image.open(picture)))


def test_hue_shift_turns_red_green_and_full_turn_keeps(tmp_path: Path) -> None:
    red = tmp_path / "red.png"
    Image.new("RGB", (8, 8), (220, 30, 30)).save(red)
    r, g, b = pixels(render("hue_shift", red, tmp_path, degrees=120))[0, 0]
    assert g > 150 and r < 60 and b < 60
    same = pixels(render("hue_shift", red, tmp_path, degrees=360))
    assert (same == pixels(Image.open(red))).all()


def test_posterize_limits_levels(picture: Path, tmp_path: Path) -> None:
    out = pixels(render("posterize", picture, tmp_path, bits=2))
    for channel in range(3):
        assert len(np.unique(out[..., channel])) <= 4
    assert len(np.unique(pixels(Image.open(picture))[..., 0])) > 4


def test_pixelate_makes_uniform_blocks(picture: Path, tmp_path: Path) -> None:
    out = pixels(render("pixelate", picture, tmp_path, block_size=8))
    assert out.shape == (48, 64, 3)
    for top in range(0, 48, 8):
        for left in range(0, 64, 8):
            block = out[top : top + 8, left : left + 8]
            assert (block == block[0, 0]).all()
    assert len({tuple(p) for p in out.reshape(-1, 3)}) > 4


# --- Geometry ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "size"),
    [
        ({"width": 32, "height": 32, "mode": "fit"}, (32, 24)),
        ({"width": 100, "height": 100, "mode": "fit"}, (100, 75)),
        ({"width": 32, "height": 32, "mode": "fill"}, (32, 32)),
        ({"width": 30, "height": 50, "mode": "stretch"}, (30, 50)),
        ({"width": 32, "height": 32, "mode": "pad"}, (32, 32)),
        ({"width": 128}, (128, 96)),
        ({"height": 24}, (32, 24)),
    ],
)
def test_resize_gives_the_asked_size(
    params: dict[str, Any], size: tuple[int, int], picture: Path, tmp_path: Path
) -> None:
    assert render("resize", picture, tmp_path, **params).size == size


def test_resize_pad_uses_the_pad_colour(picture: Path, tmp_path: Path) -> None:
    box = {"width": 32, "height": 32, "mode": "pad"}
    out = pixels(render("resize", picture, tmp_path, **box, pad_color="#ff00ff"))
    assert tuple(out[0, 16]) == (255, 0, 255)  # the band above the picture
    assert tuple(out[16, 16]) != (255, 0, 255)
    translucent = render("resize", picture, tmp_path, **box, pad_color="#00000000")
    assert translucent.mode == "RGBA" and _alpha(translucent, (16, 0)) == 0


def test_rotate_quarter_turn_swaps_sides_clockwise(picture: Path, tmp_path: Path) -> None:
    original = pixels(Image.open(picture))
    out = pixels(render("rotate", picture, tmp_path, degrees=90))
    assert out.shape == (64, 48, 3)
    # Clockwise: the original's left column becomes the top row, read right to left.
    assert (out[0, :] == original[::-1, 0]).all()
    assert (pixels(render("rotate", picture, tmp_path, degrees=-270)) == out).all()


def test_rotate_free_angle_expands_and_fills(picture: Path, tmp_path: Path) -> None:
    out = render("rotate", picture, tmp_path, degrees=30, fill="#00ff00")
    assert out.width > 64 and out.height > 48
    assert out.getpixel((0, 0)) == (0, 255, 0)
    kept = render("rotate", picture, tmp_path, degrees=30, expand=False, fill="#00000000")
    assert kept.size == (64, 48) and kept.mode == "RGBA" and _alpha(kept, (0, 0)) == 0


def test_flip_and_mirror(picture: Path, tmp_path: Path) -> None:
    original = pixels(Image.open(picture))
    assert (pixels(render("flip", picture, tmp_path)) == original[::-1]).all()
    assert (pixels(render("mirror", picture, tmp_path)) == original[:, ::-1]).all()


def test_crop_gives_the_asked_box(picture: Path, tmp_path: Path) -> None:
    out = pixels(render("crop", picture, tmp_path, left=10, top=5, width=20, height=30))
    assert out.shape == (30, 20, 3)
    assert (out == pixels(Image.open(picture))[5:35, 10:30]).all()
    assert render("crop", picture, tmp_path, left=40, top=8).size == (24, 40)


def test_crop_outside_the_picture_is_refused(picture: Path, tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="does not fit"):
        render("crop", picture, tmp_path, left=60, top=0, width=10, height=10)


# --- Inputs: formats, modes, refusals ------------------------------------------------


def test_kind_comes_from_the_bytes_not_the_name(tmp_path: Path) -> None:
    png_named_jpg = make_image(tmp_path / "picture.jpg", 16, 16, format="PNG")
    assert probe(png_named_jpg).format == "PNG"
    clip_named_png = make_clip(tmp_path / "clip.png", 0.25, 32, 32, 8, audio=False)
    info = probe(clip_named_png)
    assert info.kind == "video" and (info.width, info.height) == (32, 32)
    assert probe(make_audio(tmp_path / "tone.bin", 0.2)).kind == "audio"


@pytest.mark.parametrize(
    ("mode", "format", "expected"),
    [("L", "PNG", "RGB"), ("P", "GIF", "RGB"), ("RGB", "JPEG", "RGB"), ("LA", "PNG", "RGBA")],
)
def test_images_open_as_rgb_or_rgba(mode: str, format: str, expected: str, tmp_path: Path) -> None:
    path = make_image(tmp_path / "any", 16, 12, mode=mode, format=format)
    image = open_image(path)
    assert image.mode == expected and image.size == (16, 12)


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    ramp = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8)
    Image.fromarray(ramp).save(path)
    out = pixels(open_image(path))
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255 and 100 < out[4, 0, 0] < 160


def test_non_media_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("these are not the pixels you are looking for\n" * 20)
    assert probe(text).kind == "unknown"
    with pytest.raises(MediaError, match="not a recognised"):
        render("grayscale", text, tmp_path)


def test_audio_is_refused_by_image_effects(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="takes image or video input"):
        render("invert", make_audio(tmp_path / "tone.m4a", 0.2), tmp_path)


def test_png_header_claiming_huge_size_is_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_claiming(100_000, 100_000))
    with pytest.raises(MediaError, match="refused"):
        probe(bomb)
    with pytest.raises(MediaError, match="refused"):
        render("blur", bomb, tmp_path)
    with pytest.raises(MediaError, match="refused"):
        open_image(bomb)


def test_tiny_png_huge_when_decoded_is_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "small.png"
    side = int(MAX_PIXELS**0.5) + 500  # just over the limit
    Image.new("1", (side, side)).save(bomb, optimize=True)
    assert bomb.stat().st_size < 100_000  # a few kilobytes that would decode to ~150 MB
    with pytest.raises(MediaError, match="megapixels"):
        render("grayscale", bomb, tmp_path)


def test_damaged_image_is_refused(picture: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.png"
    whole = picture.read_bytes()
    damaged.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(MediaError):
        render("grayscale", damaged, tmp_path)


# --- Parameters and registration -----------------------------------------------------


def test_bad_params_name_the_parameter() -> None:
    with pytest.raises(Unprocessable, match="radius"):
        EFFECTS["blur"].parse_params({"radius": -5})
    with pytest.raises(Unprocessable, match="bits"):
        EFFECTS["posterize"].parse_params({"bits": 9})
    with pytest.raises(Unprocessable, match="colour"):
        EFFECTS["grayscale"].parse_params({"colour": "red"})
    with pytest.raises(Unprocessable, match="width"):
        EFFECTS["resize"].parse_params({"mode": "fit"})
    with pytest.raises(Unprocessable, match="pad_color"):
        EFFECTS["resize"].parse_params({"width": 3, "pad_color": "black"})
    with pytest.raises(Unprocessable, match="crf"):
        EFFECTS["blur"].parse_params({"encoding": {"crf": 99}})


def test_every_effect_has_defaults_a_schema_and_its_own_hash() -> None:
    hashes = set()
    for effect in EFFECTS.values():
        if effect.name != "resize":  # resize needs a box; every other effect has defaults
            effect.parse_params(None)
        info = effect.info()
        assert msgspec.json.encode(info)
        hashes.add(effect.content_hash)
    assert len(hashes) == len(EFFECTS)
    assert len(EFFECTS) == 22  # join included


def test_progress_reaches_one_hundred(picture: Path, tmp_path: Path) -> None:
    seen: list[float] = []
    effect = EFFECTS["sepia"]
    effect.load()([picture], tmp_path, effect.parse_params({}), RenderContext(progress=seen.append))
    assert seen[-1] == 100.0


# --- Helpers ----------------------------------------------------------------------------


def _alpha(image: Image.Image, xy: tuple[int, int]) -> int:
    return int(np.asarray(image)[xy[1], xy[0], 3])


def _roughness(values: np.ndarray) -> float:
    """Mean absolute second difference along rows: zero on smooth ramps, high at edges."""
    return float(np.abs(np.diff(values[..., :3], n=2, axis=1)).mean())


def _chroma(values: np.ndarray) -> float:
    return float((values[..., :3].max(axis=2) - values[..., :3].min(axis=2)).mean())


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` RGB but holds a few bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_an_output_past_the_pixel_limit_is_refused(tmp_path: Path) -> None:
    picture = make_image(tmp_path / "square.png", 100, 90)  # 9,000 pixels, under the limit
    effect = EFFECTS["rotate"]
    params = effect.parse_params({"degrees": 45, "expand": True})
    small = RenderContext(limits=MediaLimits(max_pixels=10_000))
    with pytest.raises(MediaError, match="the output is 136x136"):
        effect.load()([picture], tmp_path, params, small)
    straight = effect.parse_params({"degrees": 90})
    assert effect.load()([picture], tmp_path, straight, small).exists()
