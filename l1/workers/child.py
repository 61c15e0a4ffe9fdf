"""What runs inside a render's own process: load the effect, render under the limits,
store the output, and report back over a pipe.

A render process lives for one render. Its parent (the worker) kills it on a cancel or
a time-out; it ends itself when the worker goes away (its lifeline pipe closes), so a
render never outlives the worker that owns it. Memory is bounded by ``RLIMIT_DATA``.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from l1.cache.store import ContentStore
from l1.effects import Effect, MediaError, MediaLimits, RenderContext
from l1.effects.params import VideoParams
from l1.errors import L1Error
from l1.schemas import SegmentPlan, SegmentSpan
from l1.workers.failures import describe, permanent, scrub

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

__all__ = ["Job", "Outcome", "main"]

# Exit status of a render process whose worker went away.
ORPHANED = 70


@dataclass(frozen=True, kw_only=True)
class Job:
    """One render, as handed to its process."""

    effect: Effect
    inputs: list[Path]
    params: dict[str, Any]
    workdir: Path
    cache_dir: Path
    limits: MediaLimits
    memory: int | None  # bytes, or None for no limit
    segment_seconds: float = 0.0  # split a long video into parts this long (0: never)
    threads: int = 0  # per render: decoding, filters, encoder (0: the libraries' choice)
    segment: SegmentSpan | None = None  # the part to render, or None for the whole


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """How a render ended: ``done`` with the stored item, ``split`` with the parts it
    is to be rendered in instead (a long video), ``refused`` (no retry can help: bad
    media, bad params, over a limit) or ``failed`` (another attempt might succeed),
    with the reason."""

    kind: str
    reason: str = ""
    item: dict[str, Any] | None = None
    plan: SegmentPlan | None = None


def main(job: Job, results: Connection, lifeline: Connection) -> None:
    """Render ``job``; progress and the :class:`Outcome` go to ``results``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when renders stop
    threading.Thread(target=_watch, args=(lifeline,), daemon=True).start()
    if job.memory:
        resource.setrlimit(resource.RLIMIT_DATA, (job.memory, job.memory))
    try:
        outcome = _render(job, results)
    except MemoryError:  # Python's or FFmpeg's (ENOMEM)
        outcome = _out_of_memory(job)
    # A reason is read by the run's owner: no server paths in it.
    outcome = msgspec.structs.replace(outcome, reason=scrub(outcome.reason, job))
    results.send_bytes(msgspec.msgpack.encode(outcome))


def _out_of_memory(job: Job) -> Outcome:
    if job.memory:
        # Under its own limit a render needs the same memory on every attempt.
        limit = f"{job.memory / 2**20:,.0f} MiB"
        return Outcome(kind="refused", reason=f"the render needed more than {limit}")
    # No limit of its own: the machine was short, which another attempt may not be.
    return Outcome(kind="failed", reason="the machine ran out of memory")


def _render(job: Job, results: Connection) -> Outcome:
    def progress(percent: float) -> None:
        results.send_bytes(msgspec.msgpack.encode(percent))

    try:
        render = job.effect.load()
        params = job.effect.parse_params(job.params)
        if (plan := _plan(job, params)) is not None:
            return Outcome(kind="split", plan=plan)
        context = RenderContext(
            progress=progress, limits=job.limits, threads=job.threads, segment=job.segment
        )
        produced = render(job.inputs, job.workdir, params, context)
        item = ContentStore(job.cache_dir, scratch=job.workdir).put_file(produced)
    except (MediaError, L1Error) as error:
        return Outcome(kind="refused", reason=f"{job.effect.name}: {error}")
    except MemoryError:
        raise
    except Exception as error:
        if permanent(error):  # FFmpeg or Pillow refusing the media: the same every time
            return Outcome(kind="refused", reason=f"{job.effect.name}: {describe(error)}")
        return Outcome(kind="failed", reason=describe(error))
    return Outcome(kind="done", item=msgspec.to_builtins(item))


def _plan(job: Job, params: msgspec.Struct) -> SegmentPlan | None:
    """The parts to split a per-frame render of a long video into, found here rather
    than in the worker: reading a hostile file's packets is best done in a process
    that may die."""
    whole = job.segment is None and job.segment_seconds > 0 and job.effect.segmentable
    if not whole or not job.inputs or not isinstance(params, VideoParams):
        return None
    # Here, not at the top: the worker and the API import this module, and neither
    # loads the media libraries.
    from l1.effects.media.segments import plan_segments

    return plan_segments(job.inputs[0], params.encoding, job.segment_seconds, job.limits)


def _watch(lifeline: Connection) -> None:
    """End this process when the worker that started it is gone."""
    with contextlib.suppress(EOFError, OSError):
        lifeline.recv_bytes()
    os._exit(ORPHANED)
