"""The render worker service: a fetcher and bounded runners over the ``workers`` consumer.

Outcome by exception type: a render that can never succeed is terminated at once and
its request kept as a dead letter; any other error (a time-out, a crashed render
process) is handed back (nak with a growing delay) until ``max_deliver`` attempts,
then fails the run the same way. JetStream being briefly unable to answer (a cluster
failing over) is nobody's failure: the request is handed back and the run never fails
for it. A request is acked only once its output is stored
and its ``completed`` event confirmed by JetStream. The attempt count comes from
JetStream, so a request whose renders keep killing their worker is failed on the
delivery after the last allowed one, without rendering again.

A render stops within a second when its run is cancelled, when it times out, and when
this worker loses its claim (NATS unreachable for longer than AckWait, after which
JetStream hands the request to another worker): one step never renders twice at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import socket
import uuid
from contextlib import aclosing
from typing import TYPE_CHECKING

import msgspec

from l1.events import subjects
from l1.events.consumer import batches, quietly
from l1.events.schemas import (
    CacheStored,
    RunCompleted,
    RunFailed,
    RunProgress,
    RunSplit,
    RunStarted,
)
from l1.events.streams import RENDER_STREAM, WORKERS
from l1.events.transient import TRANSIENT
from l1.schemas import RenderRequest, SegmentPlan
from l1.timestamps import utc_now
from l1.workers.cancellations import Cancellations
from l1.workers.heartbeat import Rendering, WorkerBeat
from l1.workers.render import PermanentRenderError

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.aio.msg import Msg

    from l1.events.publisher import Publisher
    from l1.settings import Settings
    from l1.workers.metrics import WorkerMetrics
    from l1.workers.render import Renderer, RenderResult

__all__ = ["WorkerService"]

log = logging.getLogger(__name__)

_decoder = msgspec.json.Decoder(RenderRequest)

# How often a running render reports progress (and tells JetStream it is alive).
REPORT_EVERY = 1.0
# How many times the render slots a worker fetches while requests are all quick.
QUICK_BATCH = 8


class Stop(enum.Enum):
    """Why a render was stopped before it finished."""

    CANCELLED = "the run was cancelled"
    CLAIM_LOST = "this worker lost its claim on the request"


class WorkerService:
    """Pulls render requests and renders up to ``concurrency`` of them at once."""

    def __init__(
        self,
        nc: NATS,
        *,
        renderer: Renderer,
        publisher: Publisher,
        settings: Settings,
        concurrency: int = 4,
        grace: float = 10.0,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._renderer = renderer
        self._publisher = publisher
        self._settings = settings
        self._concurrency = concurrency
        self._grace = grace
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(concurrency)  # renders in processes at once
        self._only_quick = False  # the last batch was all quick renders
        self._rendering: dict[asyncio.Task[None], RenderRequest] = {}
        self._stopped: dict[asyncio.Task[None], Stop] = {}
        self._cancellations = Cancellations(self._js, self._on_cancel)
        self._metrics = metrics
        self._since: dict[asyncio.Task[None], str] = {}
        self._done = 0
        self._failed = 0
        self.started_at = utc_now()
        self.name = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"

    def beat(self) -> WorkerBeat:
        """What this worker is doing now, for its heartbeat."""
        return WorkerBeat(
            worker=self.name,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=self.started_at,
            beat_at=utc_now(),
            concurrency=self._concurrency,
            rendering=[
                Rendering(
                    run_id=request.run_id,
                    recipe=request.recipe,
                    effect=request.effect,
                    node_id=request.node_id,
                    since=self._since.get(task, self.started_at),
                )
                for task, request in list(self._rendering.items())
            ],
            renders_done=self._done,
            renders_failed=self._failed,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Render until ``stop`` is set, then finish or hand back what is held."""
        await self._cancellations.start()
        pulled = batches(
            self._nc, stream=RENDER_STREAM, durable=WORKERS, stop=stop, room=self._room
        )
        try:
            async with aclosing(pulled) as messages:
                async for batch in messages:
                    self._only_quick = True
                    for msg in batch:
                        task = asyncio.create_task(self._handle(msg, self._decode(msg)))
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
        finally:
            await self._cancellations.stop()
            await self._shutdown()

    def _decode(self, msg: Msg) -> RenderRequest | None:
        try:
            request = _decoder.decode(msg.data)
        except msgspec.ValidationError:
            self._only_quick = False
            return None
        self._only_quick = self._only_quick and self._renderer.quick(request)
        return request

    async def _room(self) -> int:
        """How many requests to fetch: the free render slots, once there is one. While
        requests come that only pass files along, more at a time (each takes a moment);
        a render that needs a process waits for a slot, so at most one such batch is
        held beyond the slots before fetching falls back to what they can take."""
        limit = self._concurrency * (QUICK_BATCH if self._only_quick else 1)
        while len(self._tasks) >= limit:
            await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        return limit - len(self._tasks)

    async def _shutdown(self) -> None:
        # Two phases: let in-flight renders finish, then cancel (and nak) the rest.
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self._grace)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)

    async def _handle(self, msg: Msg, request: RenderRequest | None) -> None:
        if request is None:
            log.error("terminating malformed render request on %s", msg.subject)
            await msg.term()
            return
        attempt = msg.metadata.num_delivered or 1
        if self._cancellations.cancelled(request):
            await msg.term()
            return
        if attempt > self._settings.max_deliver:
            reason = f"gave up after {attempt - 1} attempts that never finished"
            await self._fail(msg, request, reason, attempt)
            return
        task = asyncio.current_task()
        assert task is not None
        self._rendering[task] = request
        self._since[task] = utc_now()
        if self._metrics is not None:
            self._metrics.rendering.set(len(self._rendering))
        try:
            await self._render(msg, request, attempt)
        finally:
            del self._rendering[task]
            self._since.pop(task, None)
            self._stopped.pop(task, None)
            if self._metrics is not None:
                self._metrics.rendering.set(len(self._rendering))

    async def _render(self, msg: Msg, request: RenderRequest, attempt: int) -> None:
        progress = _LatestProgress()
        # A quick render (a file passed along) sends no "started" or progress of its own
        # and needs no render slot: its "completed" says who started it and when. It keeps
        # its claim all the same, for the time its events may wait out a failover.
        quick = self._renderer.quick(request)
        reporter = asyncio.create_task(self._report(msg, request, progress))
        began = asyncio.get_running_loop().time()
        try:
            async with contextlib.nullcontext() if quick else self._slots:
                started_at = utc_now()
                if not quick:
                    started = RunStarted.of(request, worker=self.name, attempt=attempt)
                    await self._publisher.event(started)
                async with asyncio.timeout(self._settings.render_timeout):
                    result = await self._renderer.render(request, progress=progress.set)
            if isinstance(result, SegmentPlan):
                # The run is told how to split the step; the parts are new requests.
                join = self._renderer.join_hash
                await self._publisher.event(RunSplit.of(request, plan=result, join_hash=join))
            else:
                await self._finished(request, result, attempt=attempt, started_at=started_at)
            await msg.ack()
            split = isinstance(result, SegmentPlan)
            if not split:
                self._done += 1
            if self._metrics is not None:
                took = asyncio.get_running_loop().time() - began
                self._metrics.finished(request.effect, "split" if split else "completed", took)
        except asyncio.CancelledError:
            if await self._stopped_on_purpose(msg):
                return
            await quietly(msg.nak())  # shutting down: another worker takes it
            raise
        except PermanentRenderError as error:
            await self._fail(msg, request, str(error), attempt)
        except TRANSIENT as error:
            # NATS failing over is not the render's fault: the request goes back, and
            # never fails its run (past the last delivery, the reconciler sends it again).
            log.warning("render of %s handed back: %s", request.run_id, _describe(error))
            await quietly(msg.nak(delay=self._retry_delay(attempt)))
        except TimeoutError:
            limit = self._settings.render_timeout
            await self._retry_or_fail(msg, request, f"timed out after {limit:g}s", attempt)
        except Exception as error:
            await self._retry_or_fail(msg, request, _describe(error), attempt)
        finally:
            reporter.cancel()

    async def _stopped_on_purpose(self, msg: Msg) -> bool:
        """After a cancellation: settle the request if this worker stopped the render
        itself (True), or leave the cancellation to go on (False: shutting down)."""
        task = asyncio.current_task()
        assert task is not None
        reason = self._stopped.get(task)
        if reason is None:
            return False
        task.uncancel()
        log.info("render stopped: %s", reason.value)
        if reason is Stop.CANCELLED:
            await quietly(msg.term())  # nothing to retry; the run reads "cancelled"
        # A lost claim: the request is already another worker's; nothing to settle.
        return True

    async def _retry_or_fail(
        self, msg: Msg, request: RenderRequest, reason: str, attempt: int
    ) -> None:
        if attempt >= self._settings.max_deliver:
            await self._fail(msg, request, f"gave up after {attempt} attempts: {reason}", attempt)
            return
        if self._metrics is not None:
            self._metrics.finished(request.effect, "retried")
        log.warning("render of %s failed (attempt %d): %s", request.run_id, attempt, reason)
        await quietly(msg.nak(delay=self._retry_delay(attempt)))

    def _retry_delay(self, attempt: int) -> float:
        return min(self._settings.retry_delay * 2 ** (attempt - 1), 60.0)

    async def _finished(
        self, request: RenderRequest, result: RenderResult, *, attempt: int, started_at: str
    ) -> None:
        output = result.output
        if output.created:  # an item already in the cache was announced when stored
            await self._publisher.event(CacheStored.of(output, source=f"run:{request.run_id}"))
        if not request.final:
            # A step before the last: the run projector sends the steps it unblocks.
            step = RunProgress.step_done(request, output_hash=output.content_hash)
            await self._publisher.event(step)
            return
        completed = RunCompleted.of(
            request,
            provenance=result.provenance,
            worker=self.name,
            attempt=attempt,
            started_at=started_at,
        )
        await self._publisher.event(completed)

    async def _fail(self, msg: Msg, request: RenderRequest, reason: str, attempt: int) -> None:
        if (span := request.segment) is not None:
            end = "end" if span.end is None else f"{span.end:.1f}"
            reason = (
                f"segment {span.index + 1} of {span.count} ({span.start:.1f}-{end} s) "
                f"of step {span.of_node!r}: {reason}"
            )
        elif not request.final:
            reason = f"step {request.node_id!r}: {reason}"
        log.error("run %s failed: %s", request.run_id, reason)
        dead = subjects.dead_letter(request.recipe, request.run_id)
        await self._publisher.dead_letter(dead, msg.data, reason)
        await self._publisher.event(RunFailed.of(request, error=reason, attempt=attempt))
        await msg.term()
        self._failed += 1
        if self._metrics is not None:
            self._metrics.finished(request.effect, "failed")

    async def _report(self, msg: Msg, request: RenderRequest, progress: _LatestProgress) -> None:
        # Keeps the claim well inside AckWait, publishes progress when it moves, and
        # stops the render once the claim has lapsed.
        ack_wait = self._settings.ack_wait
        since_claim = 0.0
        unreachable = 0.0
        reported: float | None = None
        while True:
            await asyncio.sleep(REPORT_EVERY)
            since_claim += REPORT_EVERY
            unreachable = 0.0 if self._nc.is_connected else unreachable + REPORT_EVERY
            if unreachable > ack_wait:
                self._stop(request, Stop.CLAIM_LOST)
                return
            if since_claim >= ack_wait / 3:
                since_claim = 0.0
                await quietly(msg.in_progress())
            if progress.value is not None and progress.value != reported:
                reported = progress.value
                await quietly(self._publisher.event(RunProgress.of(request, percent=reported)))

    def _on_cancel(self, run_id: str, generation: int) -> None:
        for request in list(self._rendering.values()):
            # A cancel of an earlier generation (late, or sent again) does not stop a retry.
            if request.run_id == run_id and generation >= request.generation:
                self._stop(request, Stop.CANCELLED)

    def _stop(self, request: RenderRequest, reason: Stop) -> None:
        for task, rendering in self._rendering.items():
            if rendering is request and task not in self._stopped:
                self._stopped[task] = reason
                task.cancel()


class _LatestProgress:
    """The last percentage a render reported."""

    def __init__(self) -> None:
        self.value: float | None = None

    def set(self, percent: float) -> None:
        self.value = round(min(max(percent, 0.0), 100.0), 1)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
