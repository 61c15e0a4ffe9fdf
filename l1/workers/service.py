"""The render worker service: a fetcher and bounded runners over the ``workers`` consumer.

Outcome by exception type: a render that can never succeed is terminated at once and
its request kept as a dead letter; any other error is handed back (nak with a growing
delay) until ``max_deliver`` attempts, then fails the run the same way. A request is
acked only once its output is stored and its ``completed`` event confirmed by JetStream.
The attempt count comes from JetStream, so a request whose renders keep killing their
worker is failed on the delivery after the last allowed one, without rendering again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from typing import TYPE_CHECKING

import msgspec
import nats.errors
from nats.js.errors import NotFoundError

from l1.events import subjects
from l1.events.schemas import (
    RUN_DECODER,
    CacheStored,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunProgress,
    RunStarted,
)
from l1.events.streams import EVENTS_STREAM, RENDER_STREAM, WORKERS
from l1.schemas import RenderRequest
from l1.timestamps import utc_now
from l1.workers.render import PermanentRenderError

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from nats.aio.client import Client as NATS
    from nats.aio.msg import Msg

    from l1.events.publisher import Publisher
    from l1.settings import Settings
    from l1.workers.render import Renderer, RenderResult

__all__ = ["WorkerService"]

log = logging.getLogger(__name__)

_decoder = msgspec.json.Decoder(RenderRequest)

# How often a running render reports progress (and tells JetStream it is alive).
REPORT_EVERY = 1.0


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
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._renderer = renderer
        self._publisher = publisher
        self._settings = settings
        self._concurrency = concurrency
        self._grace = grace
        self._tasks: set[asyncio.Task[None]] = set()
        self._rendering: dict[str, tuple[asyncio.Task[None], int]] = {}
        self._cancelled: set[str] = set()
        self.name = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"

    async def run(self, stop: asyncio.Event) -> None:
        """Render until ``stop`` is set, then finish or hand back what is held."""
        subscription = await self._js.pull_subscribe_bind(WORKERS, stream=RENDER_STREAM)
        cancellations = await self._nc.subscribe(
            subjects.run_event("*", "cancelled"), cb=self._on_cancel
        )
        try:
            while not stop.is_set():
                free = self._concurrency - len(self._tasks)
                if free <= 0:
                    await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    messages = await subscription.fetch(free, timeout=0.5)
                except TimeoutError:  # nothing to fetch; nats-py raises the builtin too
                    continue
                except nats.errors.Error as error:
                    log.warning("fetch failed: %s", error)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=1.0)
                    continue
                for msg in messages:
                    task = asyncio.create_task(self._handle(msg))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        finally:
            await _quietly(cancellations.unsubscribe())
            await self._shutdown()
            await _quietly(subscription.unsubscribe())

    async def _shutdown(self) -> None:
        # Two phases: let in-flight renders finish, then cancel (and nak) the rest.
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self._grace)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)

    async def _handle(self, msg: Msg) -> None:
        try:
            request = _decoder.decode(msg.data)
        except msgspec.ValidationError as error:
            log.error("terminating malformed render request on %s: %s", msg.subject, error)
            await msg.term()
            return
        attempt = msg.metadata.num_delivered or 1
        if await self._was_cancelled(request):
            await msg.term()
            return
        if attempt > self._settings.max_deliver:
            reason = f"gave up after {attempt - 1} attempts that never finished"
            await self._fail(msg, request, reason, attempt)
            return
        task = asyncio.current_task()
        assert task is not None
        self._rendering[request.run_id] = (task, request.generation)
        try:
            await self._render(msg, request, attempt)
        finally:
            self._rendering.pop(request.run_id, None)
            self._cancelled.discard(request.run_id)

    async def _render(self, msg: Msg, request: RenderRequest, attempt: int) -> None:
        progress = _LatestProgress()
        reporter = asyncio.create_task(self._report(msg, request, progress))
        try:
            await self._publisher.event(
                RunStarted(
                    event_id=f"{request.run_id}.{request.generation}.started.{attempt}",
                    at=utc_now(),
                    run_id=request.run_id,
                    generation=request.generation,
                    worker=self.name,
                    attempt=attempt,
                )
            )
            result = await asyncio.wait_for(
                self._renderer.render(request, progress=progress.set),
                timeout=self._settings.render_timeout,
            )
            await self._finished(request, result)
            await msg.ack()
        except asyncio.CancelledError:
            if request.run_id in self._cancelled:
                # The run was cancelled: nothing to retry, and it already reads "cancelled".
                asyncio.current_task().uncancel()  # type: ignore[union-attr]
                await _quietly(msg.term())
                return
            await _quietly(msg.nak())
            raise
        except PermanentRenderError as error:
            await self._fail(msg, request, str(error), attempt)
        except Exception as error:
            await self._retry_or_fail(msg, request, _describe(error), attempt)
        finally:
            reporter.cancel()

    async def _retry_or_fail(
        self, msg: Msg, request: RenderRequest, reason: str, attempt: int
    ) -> None:
        if attempt >= self._settings.max_deliver:
            await self._fail(msg, request, f"gave up after {attempt} attempts: {reason}", attempt)
            return
        delay = min(self._settings.retry_delay * 2 ** (attempt - 1), 60.0)
        log.warning("render of %s failed (attempt %d): %s", request.run_id, attempt, reason)
        await _quietly(msg.nak(delay=delay))

    async def _finished(self, request: RenderRequest, result: RenderResult) -> None:
        output = result.output
        if output.created:  # an item already in the cache was announced when stored
            await self._publisher.event(CacheStored.of(output, source=f"run:{request.run_id}"))
        if not request.final:
            # A step before the last: the run projector sends the steps it unblocks.
            await self._publisher.event(
                RunProgress(
                    event_id=f"{request.run_id}.{request.generation}.step.{request.node_id}",
                    at=utc_now(),
                    run_id=request.run_id,
                    generation=request.generation,
                    percent=100.0,
                    node_id=request.node_id,
                    output_hash=output.content_hash,
                )
            )
            return
        await self._publisher.event(
            RunCompleted(
                event_id=f"{request.run_id}.completed.{result.provenance.task_id}",
                at=utc_now(),
                run_id=request.run_id,
                generation=request.generation,
                output_hash=output.content_hash,
                provenance=result.provenance,
            )
        )

    async def _fail(self, msg: Msg, request: RenderRequest, reason: str, attempt: int) -> None:
        if not request.final:
            reason = f"step {request.node_id!r}: {reason}"
        log.error("run %s failed: %s", request.run_id, reason)
        dead = subjects.dead_letter(request.recipe, request.run_id)
        await self._publisher.dead_letter(dead, msg.data, reason)
        await self._publisher.event(
            RunFailed(
                event_id=f"{request.run_id}.{request.generation}.failed",
                at=utc_now(),
                run_id=request.run_id,
                generation=request.generation,
                error=reason,
                attempt=attempt,
            )
        )
        await msg.term()

    async def _report(self, msg: Msg, request: RenderRequest, progress: _LatestProgress) -> None:
        # Keeps the claim well inside AckWait, and publishes progress when it moves.
        since_claim = 0.0
        reported: float | None = None
        while True:
            await asyncio.sleep(REPORT_EVERY)
            since_claim += REPORT_EVERY
            if since_claim >= self._settings.ack_wait / 3:
                since_claim = 0.0
                await _quietly(msg.in_progress())
            if progress.value is not None and progress.value != reported:
                reported = progress.value
                await _quietly(
                    self._publisher.event(
                        RunProgress(
                            event_id=uuid.uuid4().hex,
                            at=utc_now(),
                            run_id=request.run_id,
                            generation=request.generation,
                            percent=reported,
                            node_id=request.node_id,
                        )
                    )
                )

    async def _on_cancel(self, msg: Msg) -> None:
        rendering = self._rendering.get(msg.subject.split(".")[2])
        if rendering is None:
            return
        task, generation = rendering
        try:
            event = RUN_DECODER.decode(msg.data)
        except msgspec.ValidationError:
            return
        # A cancel of an earlier generation (late, or sent again) does not stop a retry.
        if event.generation >= generation:
            self._cancelled.add(event.run_id)
            task.cancel()

    async def _was_cancelled(self, request: RenderRequest) -> bool:
        subject = subjects.run_event(request.run_id, "cancelled")
        try:
            raw = await self._js.get_last_msg(EVENTS_STREAM, subject)
        except NotFoundError:
            return False
        event = RUN_DECODER.decode(raw.data or b"{}")
        return isinstance(event, RunCancelled) and event.generation >= request.generation


class _LatestProgress:
    """The last percentage a render reported; set from the render's thread."""

    def __init__(self) -> None:
        self.value: float | None = None

    def set(self, percent: float) -> None:
        self.value = round(min(max(percent, 0.0), 100.0), 1)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


async def _quietly(action: Awaitable[object]) -> None:
    try:
        await action
    except (nats.errors.Error, TimeoutError) as error:
        log.warning("could not reach NATS: %s", error)
