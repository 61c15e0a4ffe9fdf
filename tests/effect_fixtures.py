"""Effects that exist only for the tests: slow, failing and controllable renders.

Load them with ``L1_EFFECT_MODULES=tests.effect_fixtures:effects`` (API and workers
alike, since the effect's hash comes from this module's source). Each takes one input
and writes its output into the render's work directory.

- ``slow``: about three seconds in small steps, reporting progress as it goes; the
  output is the input's bytes followed by a marker line (so it differs from the input).
- ``poison``: raises ``RuntimeError`` when the input starts with ``b"poison"``; otherwise
  the output is a copy of the input.
- ``flaky``: the input is ``b"flaky:" + a file path``; raises ``RuntimeError`` while that
  file exists, so a test decides when the failure stops being transient.
- ``hang``: the input is ``b"hang:" + a file path``; keeps rendering while that file
  exists (up to a minute), reporting progress, so a test decides when it ends. Each
  render appends its process id to that path plus ``.pids``.
- ``crash``: the render process dies of SIGSEGV, as a crash in native code would.
- ``hog``: allocates (and touches) 512 MiB, then copies the input.
- ``stamp``: the input's bytes followed by a marker line, at once, in the worker itself
  (inline): many runs that each make a new item, cheaply.
- ``muxfail``: fails as FFmpeg's muxer does when it refuses the output it writes
  (PyAV's ``ArgumentError`` naming the output's path).
- ``fragile``: a per-frame effect (``invert``) that a worker may split by time, except
  that part 1 of a split render always fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from l1.effects import Effect, RenderContext
from l1.effects.params import FrameParams, NoParams

__all__ = ["SLOW_MARKER", "SLOW_SECONDS", "effects", "slow_output", "stamp_output"]

SLOW_SECONDS = 3.0
SLOW_STEP = 0.05
SLOW_MARKER = b"\n-- rendered slowly\n"
STAMP_MARKER = b"\n-- stamped\n"
HANG_LIMIT = 60.0
_HERE = f"{__name__}:"


def slow_output(data: bytes) -> bytes:
    """What ``slow`` makes of an input holding ``data``."""
    return data + SLOW_MARKER


def stamp_output(data: bytes) -> bytes:
    """What ``stamp`` makes of an input holding ``data``."""
    return data + STAMP_MARKER


def stamp(inputs: Sequence[Path], workdir: Path, params: NoParams, context: RenderContext) -> Path:
    """Output = input + marker, written at once."""
    output = workdir / f"stamp-{os.urandom(8).hex()}.out"  # renders share the directory
    output.write_bytes(stamp_output(inputs[0].read_bytes()))
    return output


def _marker_path(inputs: Sequence[Path], prefix: bytes) -> Path:
    """The file path an input of the form ``prefix + path`` names."""
    data = inputs[0].read_bytes()
    if not data.startswith(prefix):
        raise ValueError(f"input must start with {prefix!r}")
    return Path(data[len(prefix) :].decode().strip())


def slow(inputs: Sequence[Path], workdir: Path, params: NoParams, context: RenderContext) -> Path:
    """Sleep ``SLOW_SECONDS`` in steps, reporting progress; output = input + marker."""
    steps = round(SLOW_SECONDS / SLOW_STEP)
    for step in range(1, steps + 1):
        time.sleep(SLOW_STEP)  # the render's own work, not a wait on anything
        context.progress(100.0 * step / steps)
    output = workdir / "slow.out"
    output.write_bytes(slow_output(inputs[0].read_bytes()))
    return output


def poison(inputs: Sequence[Path], workdir: Path, params: NoParams, context: RenderContext) -> Path:
    """Fail on input starting with ``b"poison"``; otherwise copy the input."""
    with inputs[0].open("rb") as source:
        if source.read(6) == b"poison":
            raise RuntimeError("poisoned input: this render can never succeed")
    output = workdir / "poison.out"
    shutil.copyfile(inputs[0], output)
    return output


def flaky(inputs: Sequence[Path], workdir: Path, params: NoParams, context: RenderContext) -> Path:
    """Fail while the file named by the input exists; then copy the input."""
    marker = _marker_path(inputs, b"flaky:")
    if marker.exists():
        raise RuntimeError(f"transient failure while {marker.name} exists")
    output = workdir / "flaky.out"
    shutil.copyfile(inputs[0], output)
    return output


def hang(inputs: Sequence[Path], workdir: Path, params: NoParams, context: RenderContext) -> Path:
    """Keep rendering while the file named by the input exists; then copy the input."""
    marker = _marker_path(inputs, b"hang:")
    with Path(f"{marker}.pids").open("a") as pids:
        pids.write(f"{os.getpid()}\n")
    deadline = time.monotonic() + HANG_LIMIT
    while marker.exists() and time.monotonic() < deadline:
        time.sleep(SLOW_STEP)
        context.progress(50.0)
    output = workdir / "hang.out"
    shutil.copyfile(inputs[0], output)
    return output


def crash(inputs: Sequence[Path], workdir: Path, params: NoParams, context: RenderContext) -> Path:
    """Die the way a segmentation fault in a media library would."""
    os.kill(os.getpid(), signal.SIGSEGV)
    raise AssertionError("unreachable")


HOG_BYTES = 512 << 20


def hog(inputs: Sequence[Path], workdir: Path, params: NoParams, context: RenderContext) -> Path:
    """Take far more memory than a small input needs, then copy the input."""
    ballast = bytearray(HOG_BYTES)
    ballast[:: 1 << 12] = b"x" * len(ballast[:: 1 << 12])
    output = workdir / "hog.out"
    shutil.copyfile(inputs[0], output)
    return output


def muxfail(
    inputs: Sequence[Path], workdir: Path, params: NoParams, context: RenderContext
) -> Path:
    """Raise what PyAV raises when FFmpeg refuses to write the output."""
    import av.error  # only where renders run: the API loads this module too

    raise av.error.ArgumentError(22, "Invalid argument", str(workdir / "output.mp4"))


def fragile(
    inputs: Sequence[Path], workdir: Path, params: FrameParams, context: RenderContext
) -> Path:
    """``invert``, but part 1 of a split render raises."""
    from l1.effects.render.frames import Invert  # only where renders run

    if context.segment is not None and context.segment.index == 1:
        raise RuntimeError("fragile: part 1 never renders")
    return Invert()(inputs, workdir, params, context)


def effects() -> list[Effect]:
    """The test-only effects, as ``L1_EFFECT_MODULES`` expects them."""
    return [
        Effect(
            name="slow", version="1", description="Slow copy with progress.", render=_HERE + "slow"
        ),
        Effect(
            name="poison",
            version="1",
            description="Fails on poisoned input.",
            render=_HERE + "poison",
        ),
        Effect(
            name="flaky",
            version="1",
            description="Fails while a file exists.",
            render=_HERE + "flaky",
        ),
        Effect(
            name="hang",
            version="1",
            description="Renders while a file exists.",
            render=_HERE + "hang",
        ),
        Effect(name="crash", version="1", description="Dies of SIGSEGV.", render=_HERE + "crash"),
        Effect(name="hog", version="1", description="Takes 512 MiB.", render=_HERE + "hog"),
        Effect(
            name="muxfail",
            version="1",
            description="FFmpeg refuses the output.",
            render=_HERE + "muxfail",
        ),
        Effect(
            name="stamp",
            version="1",
            description="Marks a copy, inline.",
            render=_HERE + "stamp",
            inline=True,
        ),
        Effect(
            name="fragile",
            version="1",
            description="Invert; part 1 of a split render fails.",
            render=_HERE + "fragile",
            params=FrameParams,
            accepts=frozenset({"image", "video"}),
            segmentable=True,
        ),
    ]
