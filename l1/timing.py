"""Where a request's time goes: laps of its stages, shown as a ``Server-Timing`` header
(``plan;dur=0.21, record;dur=0.35, send;dur=0.48``, in milliseconds) that browsers'
developer tools and the benchmarks read."""

from __future__ import annotations

import time

__all__ = ["Laps"]


class Laps:
    """The durations of a request's stages, in the order they ran."""

    def __init__(self) -> None:
        self._laps: list[tuple[str, float]] = []
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        """``stage`` ends now (it began when the one before it ended)."""
        now = time.perf_counter()
        self._laps.append((stage, now - self._last))
        self._last = now

    def header(self) -> str:
        """The ``Server-Timing`` header value."""
        return ", ".join(f"{stage};dur={seconds * 1000:.2f}" for stage, seconds in self._laps)
