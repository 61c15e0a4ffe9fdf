"""Run updates as they happen, for the dashboard's live pages and the metrics.

One core NATS subscription on ``l1.runs.>`` per API process. Listeners (the metrics)
see every event at once; while a page listens, each event is also relayed to it once
the run record in Redis shows it (a finished run is waited for until the projector has
written it), so a page that renders the run on an update shows the new state. Updates
of one run are relayed in the order they came.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import msgspec

from l1.events import subjects
from l1.events.schemas import RUN_DECODER, RunCancelled, RunCompleted, RunEvent, RunFailed
from l1.schemas import Run

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.aio.msg import Msg

    from l1.api.run_waiter import RunWaiter
    from l1.runs.store import RunStore

__all__ = ["RunFeed", "RunUpdate"]

log = logging.getLogger(__name__)

# How long a finished run's record may lag its event before the update goes out anyway.
PROJECTION_WAIT = 5.0
# Updates a slow page may fall behind by before it misses some (it reloads on the next).
QUEUE_SIZE = 256
# Events this old are relayed again to a page that starts listening: their runs' records
# may not have shown them yet when the page caught up.
RECENT = 10.0
RECENT_AT_MOST = 1000

_FINISHED = (RunCompleted, RunFailed, RunCancelled)


class RunUpdate(msgspec.Struct, kw_only=True):
    """One change to a run, as the dashboard's pages receive it."""

    run_id: str
    event: str
    status: str | None = None  # None: the run was discarded
    progress: float | None = None
    recipe: str = ""
    output_hash: str | None = None
    error: str | None = None


# Called with every event as it arrives, before any Redis read.
Listener = Callable[[RunEvent], None]


class RunFeed:
    """Relays run events to the pages listening and to ``listeners``."""

    def __init__(
        self,
        nc: NATS,
        *,
        runs: RunStore,
        waiter: RunWaiter,
        listeners: list[Listener] | None = None,
    ) -> None:
        self._nc = nc
        self._runs = runs
        self._waiter = waiter
        self._listeners = listeners or []
        self._queues: set[asyncio.Queue[RunUpdate]] = set()
        self._latest: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._recent: deque[tuple[float, RunEvent]] = deque(maxlen=RECENT_AT_MOST)

    async def run(self, stop: asyncio.Event) -> None:
        """Relay events until ``stop`` is set."""
        subscription = await self._nc.subscribe(subjects.RUN_EVENTS, cb=self._received)
        try:
            await stop.wait()
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
            for task in list(self._tasks):
                task.cancel()

    @contextlib.contextmanager
    def updates(self) -> Iterator[asyncio.Queue[RunUpdate]]:
        """A queue receiving every update while inside."""
        queue: asyncio.Queue[RunUpdate] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._queues.add(queue)
        # What came just before may not be in Redis yet, so not in the page's catch-up.
        for _, event in self._recent:
            self._relay_in_order(event)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    async def _received(self, msg: Msg) -> None:
        try:
            event = RUN_DECODER.decode(msg.data)
        except msgspec.DecodeError:
            return  # not ours to judge here; the projector logs it
        for listener in self._listeners:
            listener(event)
        now = asyncio.get_running_loop().time()
        self._recent.append((now, event))
        while self._recent[0][0] < now - RECENT:
            self._recent.popleft()
        if self._queues:  # else no page listens: nothing to read the run for
            self._relay_in_order(event)

    def _relay_in_order(self, event: RunEvent) -> None:
        previous = self._latest.get(event.run_id)
        task = asyncio.create_task(self._relay(event, previous))
        self._latest[event.run_id] = task
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._settled(event.run_id, done))

    def _settled(self, run_id: str, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._latest.get(run_id) is task:
            del self._latest[run_id]

    async def _relay(self, event: RunEvent, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        try:
            run = await self._runs.get(event.run_id)
            if isinstance(event, _FINISHED) and (run is None or not run.status.terminal):
                run = await self._waiter.wait(event.run_id, PROJECTION_WAIT)
        except Exception as error:  # Redis away: the next event tries again
            log.warning("live update of %s skipped: %s", event.run_id, error)
            return
        update = _update(event, run)
        for queue in list(self._queues):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(update)


def _update(event: RunEvent, run: Run | None) -> RunUpdate:
    tag = str(event.__struct_config__.tag)
    if run is None:
        return RunUpdate(run_id=event.run_id, event=tag)
    return RunUpdate(
        run_id=run.run_id,
        event=tag,
        status=str(run.status),
        progress=run.progress,
        recipe=run.recipe,
        output_hash=run.output_hash,
        error=run.error,
    )
