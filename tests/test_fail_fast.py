"""A render that can never succeed fails its run on the first attempt, and its reason
speaks of "input 1" and "the output", never of the server's paths; what the machine
was short of is retried."""

from __future__ import annotations

import errno
import io
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av.error
import msgspec
import pytest
from PIL import Image, UnidentifiedImageError

from l1.effects import Effect, MediaError, MediaLimits
from l1.settings import Settings
from l1.timestamps import micros
from l1.workers.child import Job
from l1.workers.failures import describe, permanent, scrub
from tests.harness import EventTap, Harness, submit, upload
from tests.media import make_clip
from tests.processes import with_test_effects

# An absolute path in a message: a slash at the start of a word ("video/mp4" is fine).
ABSOLUTE_PATH = re.compile(r"(?:^|[\s'\"(=:])/[\w.-]")
# How soon after its render started a run that can never succeed must read "failed".
FAIL_WITHIN = 5.0

# --- classification ------------------------------------------------------------------

# FFmpeg's own codes (four-letter tags); PyAV's stub does not list ErrorType.
INVALID_DATA = int(getattr(av.error, "ErrorType").INVALIDDATA)  # noqa: B009
END_OF_FILE = int(getattr(av.error, "ErrorType").EOF)  # noqa: B009


def _raised(error: BaseException) -> BaseException:
    """``error`` as it is once raised (with its traceback)."""
    try:
        raise error
    except BaseException as caught:
        return caught


def _pillow_error(data: bytes) -> BaseException:
    """What Pillow raises decoding ``data``."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except Exception as error:
        return error
    raise AssertionError("Pillow decoded it")


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (av.error.ArgumentError(errno.EINVAL, "Invalid argument", "/x/output.mp4"), True),
        (av.error.InvalidDataError(INVALID_DATA, "Invalid data found"), True),
        (av.error.EOFError(END_OF_FILE, "End of file"), True),
        (av.error.PermissionError(errno.EACCES, "Permission denied"), True),
        (av.error.MemoryError(errno.ENOMEM, "Cannot allocate memory"), False),
        (av.error.BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable"), False),
        (av.error.OSError(errno.ENOSPC, "No space left on device"), False),
        (av.error.OSError(errno.EIO, "Input/output error"), False),
        (av.error.OSError(errno.EMFILE, "Too many open files"), False),
        (OSError(errno.ENOSPC, "No space left on device"), False),
        (OSError(errno.EIO, "Input/output error"), False),
        (MediaError("refused: too many pixels"), True),
        (RuntimeError("a bug, or bad luck"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else None,
)
def test_ffmpeg_and_media_errors_are_permanent_unless_the_machine_was_short(
    error: BaseException, expected: bool
) -> None:
    assert permanent(_raised(error)) is expected


def test_pillow_failing_to_decode_is_permanent() -> None:
    truncated = _pillow_error(_png()[:60])
    assert isinstance(truncated, OSError) and truncated.errno is None
    assert permanent(truncated)
    unidentified = _pillow_error(b"neither image nor anything else")
    assert isinstance(unidentified, UnidentifiedImageError)
    assert permanent(unidentified)
    assert describe(truncated).startswith("the image could not be decoded: ")


def test_the_same_exceptions_raised_outside_pillow_are_retried() -> None:
    assert not permanent(_raised(OSError("no errno, but not Pillow's")))
    assert not permanent(_raised(ValueError("a bug in an effect")))


# --- reasons in the user's terms -----------------------------------------------------


@pytest.fixture
def job(tmp_path: Path) -> Job:
    """A job as the worker makes one: inputs in the cache, a work directory in scratch."""
    cache = tmp_path / "data" / "cache"
    workdir = cache / "tmp" / "scratch-123-abc" / "render-xyz"
    inputs = [cache / "objects" / "ab" / ("ab" * 32), cache / "objects" / "cd" / ("cd" * 32)]
    effect = Effect(name="e", version="1", description="e", render="tests.effect_fixtures:slow")
    return Job(
        effect=effect,
        inputs=inputs,
        params={},
        workdir=workdir,
        cache_dir=cache,
        limits=MediaLimits(),
        memory=None,
    )


def test_ffmpeg_refusing_the_output_reads_in_user_terms(job: Job) -> None:
    output = str(job.workdir / "output.mp4")
    error = av.error.ArgumentError(errno.EINVAL, "Invalid argument", output)
    expected = "writing the output failed: Invalid argument (FFmpeg error 22)"
    assert scrub(f"grayscale: {describe(error)}", job) == f"grayscale: {expected}"
    # PyAV's own wording of it, inside another message.
    assert scrub(f"the filter failed: {error}", job) == f"the filter failed: {expected}"


def test_inputs_and_cache_paths_are_named_not_shown(job: Job) -> None:
    missing = FileNotFoundError(errno.ENOENT, "No such file or directory", str(job.inputs[1]))
    assert scrub(str(missing), job) == "reading input 2 failed: No such file or directory (error 2)"
    frame = job.workdir / "frame-0001.png"
    mixed = f"could not join {job.inputs[0]} and {frame} (see {job.cache_dir}/index.db)"
    assert scrub(mixed, job) == "could not join input 1 and frame-0001.png (see index.db)"


def test_paths_outside_the_cache_and_plain_text_are_left_alone(job: Job) -> None:
    for text in ("Input/output error", "no module named x in /usr/lib/python3", ""):
        assert scrub(text, job) == text


def test_ffmpeg_codes_that_are_not_error_numbers_are_not_shown() -> None:
    error = av.error.InvalidDataError(INVALID_DATA, "Invalid data found when processing input")
    assert describe(error) == "Invalid data found when processing input (FFmpeg)"


# --- end to end ----------------------------------------------------------------------


@pytest.fixture
async def l1(settings: Settings) -> AsyncIterator[Harness]:
    """The test-only effects, five deliveries and the default back-off: a render that
    was retried would take far longer than :data:`FAIL_WITHIN` to fail."""
    [default] = [f.default for f in msgspec.structs.fields(Settings) if f.name == "retry_delay"]
    tuned = msgspec.structs.replace(with_test_effects(settings, max_deliver=5), retry_delay=default)
    async with Harness(tuned).running() as harness:
        yield harness


async def _fails_at_once(l1: Harness, recipe: str, item: str) -> dict[str, Any]:
    """Run ``recipe`` on ``item``; check that it failed on its first and only attempt,
    soon after its render started, with a reason free of paths; return the run."""
    run_id = (await submit(l1.http, recipe, [item]))["run_id"]
    run = await l1.finished_run(run_id, timeout=15)
    assert run["status"] == "failed", run
    assert run["attempts"] == 1, run
    assert l1.settings.nats_url
    async with EventTap(l1.settings.nats_url, f"l1.runs.{run_id}.>") as tap:
        events = await tap.settled()
    started = [e for e in events if e["event"] == "started"]
    [failed] = [e for e in events if e["event"] == "failed"]
    assert [e["attempt"] for e in started] == [1]
    took = (micros(failed["at"]) - micros(started[0]["at"])) / 1e6
    assert took < FAIL_WITHIN, f"failed {took:.1f}s after its render started"
    letters = (await l1.http.get("/dead")).json()["items"]
    [letter] = [d for d in letters if d["run_id"] == run_id]
    for text in (run["error"], letter["reason"], failed["error"]):
        assert not ABSOLUTE_PATH.search(text), text
        assert str(l1.settings.data_dir) not in text
    return run


async def test_ffmpeg_refusing_the_output_fails_the_run_at_once(l1: Harness) -> None:
    item = await upload(l1.http, f"mux me {os.urandom(8).hex()}".encode())
    run = await _fails_at_once(l1, "muxfail", item)
    assert "writing the output failed: Invalid argument (FFmpeg error 22)" in run["error"]


async def test_a_truncated_mp4_fails_at_once_saying_why(l1: Harness, tmp_path: Path) -> None:
    data = make_clip(tmp_path / "clip.mp4", seconds=0.5).read_bytes()
    moov = data.rindex(b"moov") - 4  # the index at the end, where FFmpeg put it
    assert moov > data.index(b"mdat")
    item = await upload(l1.http, data[:moov])
    run = await _fails_at_once(l1, "grayscale", item)
    assert "not a recognised image, video or audio file" in run["error"], run["error"]
