"""Split renders at the effect level: the plan of a long video's parts, each part
rendered on its own, and the join, compared with the same render in one piece."""

from __future__ import annotations

import itertools
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest
from msgspec.structs import replace

from l1.effects.catalogue import default_effects
from l1.effects.limits import MediaLimits
from l1.effects.media.segments import plan_segments
from l1.effects.params import VideoEncoding
from l1.effects.registry import MediaError, RenderContext
from l1.schemas import SegmentPlan, SegmentSpan
from tests.media import make_clip, make_image

EFFECTS = default_effects()
SECONDS = 1.0  # the part length of these tests: a 3 s clip makes four parts
FFMPEG = "/usr/bin/ffmpeg"

Decoded = list[tuple[Fraction, bytes]]


def _encode(source: Path, path: Path, *args: str) -> Path:
    """``source`` encoded again by the ffmpeg command line with ``args``."""
    command = [FFMPEG, "-y", "-v", "error", "-i", str(source), *args, str(path)]
    subprocess.run(command, check=True)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three-second clips with sound (read-only); ``gop`` has a key frame every ten
    frames and B-frames, so the parts seek into the middle of the clip."""
    root = tmp_path_factory.mktemp("split-clips")
    plain = make_clip(root / "plain.mp4", 3.0, 160, 120, 24, audio=True)
    gop = ["-c:v", "libx264", "-g", "10", "-bf", "3", "-preset", "veryfast", "-c:a", "copy"]
    vp9 = ["-c:v", "libvpx-vp9", "-g", "12", "-deadline", "realtime", "-cpu-used", "8"]
    return {
        "plain": plain,
        "gop": _encode(plain, root / "gop.mp4", *gop),
        "webm": _encode(plain, root / "clip.webm", *vp9, "-c:a", "libopus"),
        "short": make_clip(root / "short.mp4", 0.5, 160, 120, 24, audio=False),
        "gif": _encode(plain, root / "clip.gif", "-t", "2", "-vf", "scale=40:30"),
        "avi": _encode(plain, root / "clip.avi", *gop[:-2], "-an"),
    }


def _render(
    name: str,
    inputs: list[Path],
    workdir: Path,
    params: dict[str, Any],
    *,
    segment: SegmentSpan | None = None,
    threads: int = 0,
) -> Path:
    effect = EFFECTS.get(name)
    out = workdir / f"out-{len(list(workdir.iterdir()))}"
    out.mkdir()
    context = RenderContext(segment=segment, threads=threads)
    return effect.load()(inputs, out, effect.parse_params(params), context)


def _plan(path: Path, **encoding: Any) -> SegmentPlan:
    plan = plan_segments(path, VideoEncoding(**encoding), SECONDS, MediaLimits())
    assert plan is not None
    return plan


def _resolved(plan: SegmentPlan, **encoding: Any) -> dict[str, Any]:
    """The encoding of the parts and the join: as asked, format and codec resolved."""
    return {"encoding": {**encoding, "format": plan.format, "codec": plan.codec}}


def _split(
    name: str,
    source: Path,
    workdir: Path,
    plan: SegmentPlan,
    params: dict[str, Any],
    *,
    threads: int = 0,
) -> list[Path]:
    """Every part of ``plan`` of ``name`` over ``source`` (each seeks into the clip)."""
    return [
        _render(name, [source], workdir, params, segment=span, threads=threads)
        for span in plan.segments
    ]


def _decoded(path: Path) -> Decoded:
    """Every frame's time and pixels."""
    with av.open(str(path)) as container:
        return [
            (_seconds(frame.pts, frame.time_base), frame.to_ndarray(format="rgb24").tobytes())
            for frame in container.decode(video=0)
        ]


def _seconds(stamp: int | None, base: Fraction | None) -> Fraction:
    assert stamp is not None and base is not None
    return stamp * base


def _same_frames(joined: Path, whole: Path) -> None:
    split, expected = _decoded(joined), _decoded(whole)
    assert len(split) == len(expected)
    assert [at for at, _ in split] == [at for at, _ in expected]
    different = [i for i, (a, b) in enumerate(zip(split, expected, strict=True)) if a[1] != b[1]]
    assert different == [], f"frames {different[:5]} differ"


def _length(stream: av.stream.Stream) -> float | None:
    """The stream's length as its header states it (None where the container has none)."""
    if stream.duration is None:
        return None
    return float(_seconds(stream.duration, stream.time_base))


def _streams(path: Path) -> dict[str, Any]:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        return {
            "format": container.format.name,
            "video": video.codec_context.name,
            "frames": sum(1 for _ in container.decode(video=0)),
            "duration": _length(video),
            "audio": audio.codec_context.name if audio else None,
            "audio_duration": _length(audio) if audio else None,
        }


# --- The plan -------------------------------------------------------------------------


def test_plan_cuts_a_short_preview_then_even_parts(clips: dict[str, Path]) -> None:
    plan = _plan(clips["gop"])
    spans = plan.segments
    assert (plan.format, plan.codec, plan.frames) == ("mp4", "h264", 72)
    assert [s.index for s in spans] == list(range(len(spans)))
    assert all(s.count == len(spans) and s.of_node == "" for s in spans)
    assert spans[0].frames < spans[1].frames  # the preview is ready early
    assert spans[0].frames == 6 and spans[1].frames == 24  # 1/4 s, then 1 s at 24 fps
    assert sum(s.frames for s in spans) == plan.frames
    for before, after in itertools.pairwise(spans):
        assert after.first_frame == before.first_frame + before.frames
        assert before.end == after.start
        assert after.start == pytest.approx(after.first_frame / 24)
    assert spans[0].start == 0.0 and spans[-1].end is None
    assert _plan(clips["gop"]) == plan  # the same input and setting: the same cuts


def test_plan_follows_the_format_rules(clips: dict[str, Path]) -> None:
    webm = _plan(clips["webm"])
    assert (webm.format, webm.codec) == ("webm", "vp9")
    asked = _plan(clips["plain"], format="mkv", codec="ffv1")
    assert (asked.format, asked.codec) == ("mkv", "ffv1")


def test_no_plan_where_splitting_does_not_apply(clips: dict[str, Path], tmp_path: Path) -> None:
    limits = MediaLimits()
    image = make_image(tmp_path / "still.png")
    cases = {
        "short video": (clips["short"], VideoEncoding()),
        "image": (image, VideoEncoding()),
        "animation": (clips["gif"], VideoEncoding()),
        "gif target": (clips["plain"], VideoEncoding(format="gif")),
        "webp target": (clips["plain"], VideoEncoding(format="webp")),
        # AVI stores no presentation times: FFmpeg guesses them, so parts could not be cut.
        "avi": (clips["avi"], VideoEncoding()),
    }
    planned = {name: plan_segments(p, enc, SECONDS, limits) for name, (p, enc) in cases.items()}
    assert planned == dict.fromkeys(cases)
    assert plan_segments(clips["plain"], VideoEncoding(), 0, limits) is None  # turned off
    assert plan_segments(clips["plain"], VideoEncoding(), 5.0, limits) is None  # not longer


# --- Parts and the join ---------------------------------------------------------------


def test_lossless_split_render_decodes_to_the_whole_render(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    source = clips["gop"]
    plan = _plan(source, crf=0)
    whole = _render("blur", [source], tmp_path, {"encoding": {"crf": 0}})
    params = _resolved(plan, crf=0) | {"radius": 2.0}
    # Single-threaded parts: the thread count changes no pixel.
    parts = _split("blur", source, tmp_path, plan, params, threads=1)
    joined = _render("join", [*parts, source], tmp_path, _resolved(plan, crf=0))
    _same_frames(joined, whole)


def test_a_chain_of_split_steps_joins_to_the_whole_chain(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    source = clips["gop"]
    plan = _plan(source, crf=0)
    blurred = _render("blur", [source], tmp_path, {"encoding": {"crf": 0}})
    whole = _render("sepia", [blurred], tmp_path, {"encoding": {"crf": 0}})
    blur_parts = _split("blur", source, tmp_path, plan, _resolved(plan, crf=0))
    sepia_parts = [
        # A later step's part takes the same part of the step before, whole.
        _render("sepia", [part], tmp_path, _resolved(plan, crf=0), segment=span)
        for part, span in zip(
            blur_parts, [replace(s, from_source=False) for s in plan.segments], strict=True
        )
    ]
    joined = _render("join", [*sepia_parts, source], tmp_path, _resolved(plan, crf=0))
    _same_frames(joined, whole)


def test_joined_output_has_the_sound_frames_and_length_of_the_source(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    source = clips["plain"]
    plan = _plan(source)
    parts = _split("grayscale", source, tmp_path, plan, _resolved(plan))
    joined = _render("join", [*parts, source], tmp_path, _resolved(plan))
    whole = _render("grayscale", [source], tmp_path, {})
    got, expected = _streams(joined), _streams(whole)
    assert got["audio"] == "aac" and got["audio_duration"] == expected["audio_duration"]
    assert got["frames"] == expected["frames"] == _streams(source)["frames"] == 72
    assert got["duration"] == pytest.approx(3.0)
    assert got["duration"] == expected["duration"]
    assert not _streams(parts[1])["audio"]  # parts carry no sound: the join adds it once


def test_a_webm_clip_joins_to_webm(clips: dict[str, Path], tmp_path: Path) -> None:
    source = clips["webm"]
    plan = _plan(source)
    parts = _split("invert", source, tmp_path, plan, _resolved(plan))
    joined = _render("join", [*parts, source], tmp_path, _resolved(plan))
    assert joined.suffix == ".webm"
    got = _streams(joined)
    assert (got["video"], got["audio"], got["frames"]) == ("vp9", "opus", 72)


def test_join_refuses_parts_that_do_not_match(clips: dict[str, Path], tmp_path: Path) -> None:
    source = clips["plain"]
    plan = _plan(source)
    first = _render("invert", [source], tmp_path, _resolved(plan), segment=plan.segments[0])
    smaller = _resolved(plan) | {"width": 80, "height": 60, "mode": "stretch"}
    second = _render("resize", [source], tmp_path, smaller, segment=plan.segments[1])
    with pytest.raises(MediaError, match="part 2"):
        _render("join", [first, second, source], tmp_path, _resolved(plan))
