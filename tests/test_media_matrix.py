"""The media matrix: every kind of input the README's table names, rendered, and its
output checked against the table: the format (from the bytes), the codecs, the sound,
the frames, the timing and the size; ``encoding.format`` and ``encoding.codec``; the
inputs no render can take; and the same rules through the whole stack."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from PIL import Image

from l1.cache.incoming import media_type
from l1.effects import Effect, RenderContext
from l1.effects.catalogue import media_effects
from l1.effects.media.probe import MediaError
from l1.effects.params import VideoParams
from l1.errors import Unprocessable
from tests.harness import Harness, submit, upload, wait_for
from tests.media import make_audio, make_clip, make_image
from tests.media_matrix import (
    CASES,
    DEBIAN_FFMPEG,
    FORMATS,
    Case,
    Expect,
    animation_timing,
    case,
    container_facts,
    demuxer_of,
    make_text_as_mp4,
    make_truncated,
)

EFFECTS: dict[str, Effect] = {effect.name: effect for effect in media_effects()}
HEAD = 8192
# An absolute path in a message: a slash at the start of a word ("video/mp4" is fine).
ABSOLUTE_PATH = re.compile(r"(?:^|[\s'\"(=:])/[\w.-]")
RESIZED_WIDTH = 48
# How far a duration may stray beyond one frame: timestamp rounding in the containers.
SLACK = 0.002

# The effects every case goes through, with their parameters.
DEFAULT_RENDERS: dict[str, dict[str, Any]] = {
    "grayscale": {},
    "resize": {"width": RESIZED_WIDTH},
}


class Inputs:
    """The matrix's input files, each made once per module, on first use."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._made: dict[str, Path] = {}

    def __getitem__(self, id: str) -> Path:
        found = self._made.get(id)
        if found is None:
            wanted = case(id)
            if (reason := wanted.skip_reason()) is not None:
                pytest.skip(reason)
            # No suffix: the cache stores files by hash, and the kind comes from the bytes.
            found = self._made[id] = wanted.make(self._root / id)
        return found


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Inputs]:
    yield Inputs(tmp_path_factory.mktemp("matrix"))


def render(name: str, source: Path, workdir: Path, **params: Any) -> Path:
    """Render effect ``name`` over ``source`` in a fresh directory under ``workdir``."""
    effect = EFFECTS[name]
    out_dir = workdir / f"out-{len(list(workdir.iterdir()))}"
    out_dir.mkdir()
    return effect.load()([source], out_dir, effect.parse_params(params), RenderContext())


def sniffed(path: Path) -> str:
    """The media type the cache serves ``path`` with."""
    with path.open("rb") as file:
        return media_type(file.read(HEAD))


def check_format(path: Path, format: str) -> None:
    """``path`` is in ``format``, told by its bytes as the cache and FFmpeg tell it."""
    wanted = FORMATS[format]
    assert sniffed(path) == wanted.media_type
    assert demuxer_of(path) == wanted.demuxer


def expected_size(expect: Expect, effect: str, *, even: bool) -> tuple[int, int]:
    """The output size the rules give ``effect`` over an input of ``expect.size``;
    ``even`` for yuv420p video, whose sides are rounded down to even numbers."""
    width, height = expect.size
    if effect == "resize":
        width, height = RESIZED_WIDTH, round(RESIZED_WIDTH * height / width)
    if even:
        width, height = width - width % 2, height - height % 2
    return width, height


def _ids(cases: tuple[Case, ...] | list[Case]) -> list[Any]:
    marks = {
        "ogg-theora-vorbis": pytest.mark.skipif(not DEBIAN_FFMPEG.exists(), reason="no ffmpeg")
    }
    return [pytest.param(c.id, id=c.id, marks=marks.get(c.id, ())) for c in cases]


# --- The default output of every input ------------------------------------------------


def check_video(output: Path, expect: Expect, effect: str) -> None:
    """``output`` is the video the rules give for an input described by ``expect``."""
    wanted = FORMATS[expect.format]
    check_format(output, expect.format)
    facts = container_facts(output)
    if wanted.brand == "qt":
        assert facts.brand == "qt"
    elif wanted.demuxer == FORMATS["mp4"].demuxer:
        assert facts.brand != "qt"
    assert facts.video_codec == wanted.video_codec
    assert facts.audio_codec == expect.audio
    assert facts.frames == expect.frames
    assert expect.seconds is not None
    assert abs(facts.seconds - expect.seconds) <= expect.frame_seconds + SLACK, facts
    width, height = facts.size
    if effect == "resize":
        assert width == RESIZED_WIDTH
        assert height % 2 == 0
        assert abs(height - RESIZED_WIDTH * expect.size[1] / expect.size[0]) <= 2
    else:
        assert facts.size == expected_size(expect, effect, even=True)


def check_animation(output: Path, expect: Expect, effect: str) -> None:
    """``output`` is the animation the rules give: same format, frames, timing, loop."""
    check_format(output, expect.format)
    durations, loop, size = animation_timing(output)
    assert durations == expect.durations
    assert loop == expect.loop
    assert size == expected_size(expect, effect, even=False)


def check_still(output: Path, expect: Expect, effect: str) -> None:
    """``output`` is a PNG of the size the effect gives."""
    check_format(output, expect.format)
    with Image.open(output) as picture:
        assert picture.size == expected_size(expect, effect, even=False)
        assert getattr(picture, "n_frames", 1) == 1


CHECKS = {"video": check_video, "animation": check_animation, "still": check_still}


@pytest.mark.parametrize("effect", sorted(DEFAULT_RENDERS))
@pytest.mark.parametrize("case_id", _ids(CASES))
def test_output_follows_the_input(
    case_id: str, effect: str, inputs: Inputs, tmp_path: Path
) -> None:
    expect = case(case_id).expect
    output = render(effect, inputs[case_id], tmp_path, **DEFAULT_RENDERS[effect])
    CHECKS[expect.kind](output, expect, effect)


def test_every_format_of_the_table_is_a_default_somewhere() -> None:
    defaults = {c.expect.format for c in CASES}
    assert defaults == {"mp4", "mov", "mkv", "webm", "gif", "webp", "png"}


# --- encoding.format and encoding.codec -----------------------------------------------

# (input, encoding, format, video codec, audio codec) for video outputs.
VIDEO_OVERRIDES: list[tuple[str, dict[str, str], str, str, str | None]] = [
    ("webm-vp9-opus", {"format": "mp4"}, "mp4", "h264", "aac"),
    ("mp4-hevc-aac", {"format": "webm"}, "webm", "vp9", "opus"),
    ("mp4-hevc-aac", {"format": "mkv"}, "mkv", "h264", "aac"),
    ("mp4-hevc-aac", {"format": "mov"}, "mov", "h264", "aac"),
    ("mp4-h264-mp3", {"format": "mp4", "codec": "hevc"}, "mp4", "hevc", "mp3"),
    ("webm-vp9-opus", {"format": "mkv", "codec": "ffv1"}, "mkv", "ffv1", "opus"),
    ("mp4-hevc-aac", {"format": "mov", "codec": "prores"}, "mov", "prores", "aac"),
    ("mp4-hevc-aac", {"format": "webm", "codec": "av1"}, "webm", "av1", "opus"),
]


@pytest.mark.parametrize(
    ("case_id", "encoding", "format", "codec", "audio"),
    VIDEO_OVERRIDES,
    ids=["-".join([c, *e.values()]) for c, e, *_ in VIDEO_OVERRIDES],
)
def test_encoding_chooses_the_video_format(
    case_id: str,
    encoding: dict[str, str],
    format: str,
    codec: str,
    audio: str | None,
    inputs: Inputs,
    tmp_path: Path,
) -> None:
    source = case(case_id).expect
    output = render("grayscale", inputs[case_id], tmp_path, encoding=encoding)
    check_format(output, format)
    facts = container_facts(output)
    assert (facts.video_codec, facts.audio_codec) == (codec, audio)
    if format == "mov":
        assert facts.brand == "qt"
    assert facts.frames == source.frames
    assert source.seconds is not None
    assert abs(facts.seconds - source.seconds) <= source.frame_seconds + SLACK


@pytest.mark.parametrize("format", ["gif", "webp"])
def test_a_video_can_become_an_animation(format: str, inputs: Inputs, tmp_path: Path) -> None:
    source = case("mp4-hevc-aac").expect
    output = render("grayscale", inputs["mp4-hevc-aac"], tmp_path, encoding={"format": format})
    check_format(output, format)
    durations, _, size = animation_timing(output)
    assert len(durations) == source.frames
    assert size == source.size
    assert source.seconds is not None
    # GIF counts in hundredths of a second, so each frame may round by 10 ms.
    tolerance = source.frame_seconds + len(durations) * 0.01
    assert abs(sum(durations) / 1000 - source.seconds) <= tolerance


def test_an_animation_can_change_format(inputs: Inputs, tmp_path: Path) -> None:
    source = case("gif-animated").expect
    output = render("grayscale", inputs["gif-animated"], tmp_path, encoding={"format": "webp"})
    check_format(output, "webp")
    durations, loop, _ = animation_timing(output)
    assert (durations, loop) == (source.durations, source.loop)


@pytest.mark.parametrize(
    ("case_id", "format"),
    [("png-alpha", "webp"), ("png-16bit", "jpeg"), ("bmp", "gif"), ("jpeg", "png")],
)
def test_a_still_can_be_written_in_any_still_format(
    case_id: str, format: str, inputs: Inputs, tmp_path: Path
) -> None:
    output = render("grayscale", inputs[case_id], tmp_path, encoding={"format": format})
    check_format(output, format)
    with Image.open(output) as picture:
        assert picture.size == case(case_id).expect.size
        assert getattr(picture, "n_frames", 1) == 1


@pytest.mark.parametrize(
    "encoding",
    [
        {"format": "webm", "codec": "h264"},
        {"format": "webm", "codec": "prores"},
        {"format": "mp4", "codec": "ffv1"},
        {"format": "mov", "codec": "vp9"},
        {"format": "png", "codec": "h264"},
        {"format": "gif", "codec": "av1"},
        {"format": "avi"},
        {"codec": "theora"},
    ],
    ids=lambda e: "-".join(e.values()),
)
@pytest.mark.parametrize("effect", ["grayscale", "resize"])
def test_impossible_encodings_are_refused_with_the_params(
    effect: str, encoding: dict[str, str]
) -> None:
    params: dict[str, Any] = {**DEFAULT_RENDERS[effect], "encoding": encoding}
    with pytest.raises(Unprocessable) as refused:
        EFFECTS[effect].parse_params(params)
    # The refusal names what was asked for: the format, or the codec it cannot hold.
    assert any(value in str(refused.value) for value in encoding.values()), refused.value


def test_the_encoding_params_are_accepted_where_they_fit() -> None:
    for encoding in ({"format": "webm", "codec": "av1"}, {"format": "gif"}, {"codec": "hevc"}):
        params = EFFECTS["grayscale"].parse_params({"encoding": encoding})
        assert isinstance(params, VideoParams)
        chosen = msgspec.to_builtins(params.encoding)
        assert (chosen.get("format"), chosen.get("codec")) == (
            encoding.get("format"),
            encoding.get("codec"),
        )


# --- Inputs no render can take ----------------------------------------------------------


def truncated_mp4(root: Path) -> Path:
    """An MP4 cut in half; its index (``moov``) was written last, so it is lost."""
    whole = make_clip(root / "whole-mp4", 1.0, 96, 64, 12)
    return make_truncated(whole, root / "cut-mp4")


def truncated_webm(inputs: Inputs, root: Path) -> Path:
    return make_truncated(inputs["webm-vp9-opus"], root / "cut-webm")


BROKEN = {
    "audio-only": lambda inputs, root: make_audio(root / "tone.m4a"),
    "truncated-mp4": lambda inputs, root: truncated_mp4(root),
    "truncated-webm": truncated_webm,
    "text-named-mp4": lambda inputs, root: make_text_as_mp4(root / "notes.mp4"),
}


def _refusal(effect: str, source: Path, tmp_path: Path, **params: Any) -> str:
    with pytest.raises(MediaError) as refused:
        render(effect, source, tmp_path, **params)
    message = str(refused.value)
    assert message.strip()
    assert not ABSOLUTE_PATH.search(message), message  # no server path leaks out
    assert tmp_path.name not in message, message
    return message


@pytest.mark.parametrize("broken", sorted(BROKEN))
def test_broken_inputs_fail_with_a_clear_message(
    broken: str, inputs: Inputs, tmp_path: Path
) -> None:
    root = tmp_path / "inputs"
    root.mkdir()
    source = BROKEN[broken](inputs, root)
    _refusal("grayscale", source, tmp_path)


def test_a_video_asked_for_a_still_format_is_refused(inputs: Inputs, tmp_path: Path) -> None:
    message = _refusal("grayscale", inputs["mp4-hevc-aac"], tmp_path, encoding={"format": "png"})
    assert "png" in message.lower()


def test_a_picture_named_mp4_renders_as_a_picture(tmp_path: Path) -> None:
    source = make_image(tmp_path / "holiday.mp4", 96, 64)
    output = render("grayscale", source, tmp_path)
    check_format(output, "png")
    with Image.open(output) as picture:
        assert picture.size == (96, 64)


# --- Through the whole stack ----------------------------------------------------------

WEBM_RECIPE = b"""
name: small-sepia-clip
inputs: [{name: clip}]
nodes:
  - {id: src, type: SOURCE, config: {input: clip}}
  - {id: small, type: RESIZE, config: {width: 48}, inputs: [src]}
  - {id: toned, type: EFFECT, config: {effect: sepia}, inputs: [small]}
output: toned
"""


async def _finished(l1: Harness, body: dict[str, Any]) -> dict[str, Any]:
    response = await l1.http.post("/runs", json=body)
    assert response.status_code in (200, 202), response.text
    run = await l1.finished_run(response.json()["run_id"], timeout=25)
    assert run["status"] == "completed", run
    return run


async def _served(l1: Harness, content_hash: str) -> tuple[str, bytes]:
    response = await l1.http.get(f"/cache/{content_hash}")
    assert response.status_code == 200
    return response.headers["content-type"].split(";")[0], response.content


async def test_the_stack_keeps_formats_and_fails_broken_inputs_at_once(
    l1: Harness, inputs: Inputs, tmp_path: Path
) -> None:
    # A WebM through a two-step recipe comes back WebM, with its sound.
    registered = await l1.http.post("/recipes", content=WEBM_RECIPE)
    assert registered.status_code == 201, registered.text
    webm = await upload(l1.http, inputs["webm-vp9-opus"].read_bytes())
    run = await _finished(l1, {"recipe": "small-sepia-clip", "inputs": {"clip": webm}})
    kind, body = await _served(l1, run["output_hash"])
    assert kind == "video/webm"
    (tmp_path / "served.webm").write_bytes(body)
    facts = container_facts(tmp_path / "served.webm")
    assert (facts.video_codec, facts.audio_codec, facts.size[0]) == ("vp9", "opus", 48)

    # An animated GIF through blur comes back an animated GIF with every frame.
    gif = await upload(l1.http, inputs["gif-animated"].read_bytes())
    run = await _finished(l1, {"recipe": "blur", "inputs": [gif]})
    kind, body = await _served(l1, run["output_hash"])
    assert kind == "image/gif"
    with Image.open(io.BytesIO(body)) as animation:
        assert getattr(animation, "n_frames", 1) == case("gif-animated").expect.frames

    # A truncated MP4 fails on its first attempt, without retries.
    cut = await upload(l1.http, truncated_mp4(tmp_path).read_bytes())
    started = asyncio.get_running_loop().time()
    run_id = (await submit(l1.http, "grayscale", [cut]))["run_id"]

    async def failed() -> dict[str, Any] | None:
        state = (await l1.http.get(f"/runs/{run_id}")).json()
        return state if state["status"] in {"failed", "completed"} else None

    state = await wait_for(failed, timeout=5.0)
    assert asyncio.get_running_loop().time() - started <= 5.0
    assert state["status"] == "failed", state
    assert state["attempts"] == 1
    assert state["error"] and not ABSOLUTE_PATH.search(state["error"])


def test_mux_copies_a_video_whose_decoder_is_no_encoder(inputs: Inputs, tmp_path: Path) -> None:
    # AV1 is read by libdav1d, which cannot write: the stream is copied as it is.
    effect = EFFECTS["mux"]
    sound = make_audio(tmp_path / "tone.m4a")
    out_dir = tmp_path / "mux"
    out_dir.mkdir()
    output = effect.load()(
        [inputs["webm-av1"], sound], out_dir, effect.parse_params({}), RenderContext()
    )
    facts = container_facts(output)
    assert facts.video_codec == "av1" and facts.audio_codec is not None
    assert facts.frames == container_facts(inputs["webm-av1"]).frames
