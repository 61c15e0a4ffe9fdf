"""Render processes: every render that decodes media runs in a process of its own.

A time-out or a cancel kills the render's process at once (threads could not be
stopped); a crash in native code ends one attempt, not the worker; renders side by
side use every core. Processes come from a fork server that has the media libraries
loaded already, so one starts in milliseconds.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import signal
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from l1.schemas import SegmentPlan, SegmentSpan, StoredItem
from l1.workers import child
from l1.workers.child import Job, Outcome

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from l1.cache.store import ContentStore
    from l1.effects import Effect, MediaLimits, Progress

__all__ = ["RenderCrashed", "RenderProcesses", "RenderRefused"]

# What the fork server imports once, so that each render process starts with it.
PRELOAD = [
    "l1.workers.child",
    "l1.effects.render.frames",
    "l1.effects.render.video",
    "l1.effects.render.blend",
    "l1.effects.render.mux",
    "l1.effects.render.join",
]

_message = msgspec.msgpack.Decoder(float | Outcome)


class RenderRefused(Exception):
    """The render can never succeed (bad media or params, over a limit)."""


class RenderCrashed(Exception):
    """The render failed in a way another attempt might not."""


class RenderProcesses:
    """Starts render processes and waits for what they report."""

    def __init__(
        self,
        *,
        store: ContentStore,
        limits: MediaLimits,
        memory: int | None,
        segment_seconds: float = 0.0,
        threads: int = 0,
    ) -> None:
        self._store = store
        self._limits = limits
        self._memory = memory
        self._segment_seconds = segment_seconds
        self._threads = threads
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(PRELOAD)

    async def render(
        self,
        effect: Effect,
        inputs: list[Path],
        params: dict[str, Any],
        *,
        progress: Progress,
        split: bool = False,
        segment: SegmentSpan | None = None,
    ) -> StoredItem | SegmentPlan:
        """Render in a new process and return the stored output; with ``split``, a
        per-frame render of a long video returns the parts it is to be rendered in
        instead. ``segment``: render that part only. Cancelling the caller kills the
        process."""
        workdir = Path(tempfile.mkdtemp(prefix="render-", dir=self._store.scratch))
        job = Job(
            effect=effect,
            inputs=inputs,
            params=params,
            workdir=workdir,
            cache_dir=self._store.root,
            limits=self._limits,
            memory=self._memory,
            segment_seconds=self._segment_seconds if split else 0.0,
            threads=self._threads,
            segment=segment,
        )
        results, results_end = self._context.Pipe(duplex=False)
        lifeline_end, lifeline = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=child.main, args=(job, results_end, lifeline_end), daemon=True
        )
        try:
            await asyncio.to_thread(process.start)
            results_end.close()
            lifeline_end.close()
            outcome = await _outcome(results, progress)
        finally:
            if process.is_alive():
                process.kill()
            await asyncio.to_thread(_reap, process, workdir)
            results.close()
            lifeline.close()
        return _item(outcome, process.exitcode)


def _reap(process: multiprocessing.process.BaseProcess, workdir: Path) -> None:
    if process.pid is not None:
        process.join()
    shutil.rmtree(workdir, ignore_errors=True)


async def _outcome(results: Connection, progress: Progress) -> Outcome | None:
    """What the render process reports: progress as it goes, then its outcome (None
    when it ended without one)."""
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[Outcome | None] = loop.create_future()

    def readable() -> None:
        try:
            message = _message.decode(results.recv_bytes())
        except (EOFError, OSError):
            message = None
        if isinstance(message, float):
            progress(message)
        elif not ended.done():
            ended.set_result(message)

    loop.add_reader(results.fileno(), readable)
    try:
        return await ended
    finally:
        loop.remove_reader(results.fileno())


def _item(outcome: Outcome | None, exitcode: int | None) -> StoredItem | SegmentPlan:
    match outcome:
        case Outcome(kind="done", item=dict() as item):
            return msgspec.convert(item, StoredItem)
        case Outcome(kind="split", plan=SegmentPlan() as plan):
            return plan
        case Outcome(kind="refused", reason=reason):
            raise RenderRefused(reason)
        case Outcome(reason=reason):
            raise RenderCrashed(reason)
    raise RenderCrashed(f"the render process died ({_exit(exitcode)})")


def _exit(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"
