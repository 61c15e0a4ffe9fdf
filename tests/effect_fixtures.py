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
  exists (up to a minute), reporting progress, so a test decides when it ends.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from l1.workers.effects.registry import Effect, NoParams, Progress

__all__ = ["SLOW_MARKER", "SLOW_SECONDS", "effects", "slow_output"]

SLOW_SECONDS = 3.0
SLOW_STEP = 0.05
SLOW_MARKER = b"\n-- rendered slowly\n"
HANG_LIMIT = 60.0


def slow_output(data: bytes) -> bytes:
    """What ``slow`` makes of an input holding ``data``."""
    return data + SLOW_MARKER


def _marker_path(inputs: Sequence[Path], prefix: bytes) -> Path:
    """The file path an input of the form ``prefix + path`` names."""
    data = inputs[0].read_bytes()
    if not data.startswith(prefix):
        raise ValueError(f"input must start with {prefix!r}")
    return Path(data[len(prefix) :].decode().strip())


def slow(inputs: Sequence[Path], workdir: Path, params: NoParams, progress: Progress) -> Path:
    """Sleep ``SLOW_SECONDS`` in steps, reporting progress; output = input + marker."""
    steps = round(SLOW_SECONDS / SLOW_STEP)
    for step in range(1, steps + 1):
        time.sleep(SLOW_STEP)  # the render's own work, not a wait on anything
        progress(100.0 * step / steps)
    output = workdir / "slow.out"
    output.write_bytes(slow_output(inputs[0].read_bytes()))
    return output


def poison(inputs: Sequence[Path], workdir: Path, params: NoParams, progress: Progress) -> Path:
    """Fail on input starting with ``b"poison"``; otherwise copy the input."""
    with inputs[0].open("rb") as source:
        if source.read(6) == b"poison":
            raise RuntimeError("poisoned input: this render can never succeed")
    output = workdir / "poison.out"
    shutil.copyfile(inputs[0], output)
    return output


def flaky(inputs: Sequence[Path], workdir: Path, params: NoParams, progress: Progress) -> Path:
    """Fail while the file named by the input exists; then copy the input."""
    marker = _marker_path(inputs, b"flaky:")
    if marker.exists():
        raise RuntimeError(f"transient failure while {marker.name} exists")
    output = workdir / "flaky.out"
    shutil.copyfile(inputs[0], output)
    return output


def hang(inputs: Sequence[Path], workdir: Path, params: NoParams, progress: Progress) -> Path:
    """Keep rendering while the file named by the input exists; then copy the input."""
    marker = _marker_path(inputs, b"hang:")
    deadline = time.monotonic() + HANG_LIMIT
    while marker.exists() and time.monotonic() < deadline:
        time.sleep(SLOW_STEP)
        progress(50.0)
    output = workdir / "hang.out"
    shutil.copyfile(inputs[0], output)
    return output


def effects() -> list[Effect]:
    """The test-only effects, as ``L1_EFFECT_MODULES`` expects them."""
    return [
        Effect(name="slow", version="1", description="Slow copy with progress.", render=slow),
        Effect(name="poison", version="1", description="Fails on poisoned input.", render=poison),
        Effect(name="flaky", version="1", description="Fails while a file exists.", render=flaky),
        Effect(name="hang", version="1", description="Renders while a file exists.", render=hang),
    ]
