"""Run updates as they happen, for the dashboard's live pages and the metrics.

One core NATS subscription on ``l1.runs.>`` per API process. Listeners (the metrics)
see every event at once; while a page listens, each event is also relayed to it once
the run record in Redis shows it (a finished run is waited for until the projector has
written it), so a page that renders the run on an update shows the new state. Updates
of one run are relayed in the order they came.

What it costs is bounded whoever connects:

- A page that starts listening catches up on the latest state of the runs that changed
  in the last :data:`RECENT` seconds (at most :data:`RECENT_AT_MOST` runs), sent to that
  page alone. A state already read for another page is sent again as it is; the run of
  one no page has seen yet is read once and kept for the next page.
- Each page has a queue of :data:`QUEUE_SIZE` updates; a page that falls that far
  behind is closed (its browser reconnects and catches up) rather than kept.
- :class:`Seats` caps how many pages listen, in total and from one address.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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

__all__ = ["LivePage", "RunFeed", "RunUpdate", "Seat", "Seats"]

log = logging.getLogger(__name__)

# How long a finished run's record may lag its event before the update goes out anyway.
PROJECTION_WAIT = 5.0
# Updates a page may fall behind by before it is closed; more than a catch-up sends.
QUEUE_SIZE = 256
# Runs whose events are this recent are sent to a page that starts listening: their
# records may not have shown them yet when the page read them.
RECENT = 10.0
RECENT_AT_MOST = 128
# Pages listening at once, in total and from one address, unless settings say otherwise.
MAX_PAGES = 64
MAX_PAGES_PER_ADDRESS = 8

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


class LivePage:
    """The updates of one listening page, in a bounded queue.

    A page whose queue is full is closed: what it missed is dropped and :meth:`next`
    answers None, so that its stream ends and the browser reconnects and catches up.
    """

    def __init__(self, size: int = QUEUE_SIZE) -> None:
        self._queue: asyncio.Queue[RunUpdate | None] = asyncio.Queue(maxsize=size)
        self.closed = False

    def offer(self, update: RunUpdate) -> bool:
        """Queue ``update``; False once the page is closed (now or before)."""
        if self.closed:
            return False
        try:
            self._queue.put_nowait(update)
        except asyncio.QueueFull:
            self._close()
            return False
        return True

    async def next(self, timeout: float) -> RunUpdate | None:
        """The next update, None once closed; TimeoutError after ``timeout`` of quiet."""
        return await asyncio.wait_for(self._queue.get(), timeout=timeout)

    def _close(self) -> None:
        self.closed = True
        while not self._queue.empty():  # its backlog is moot: the page reloads
            self._queue.get_nowait()
        self._queue.put_nowait(None)


class Seat:
    """One listening page's place among the :class:`Seats`; release it once."""

    def __init__(self, seats: Seats, address: str) -> None:
        self._seats = seats
        self.address = address
        self._held = True

    def release(self) -> None:
        """Give the place back (again is harmless)."""
        if self._held:
            self._held = False
            self._seats.returned(self.address)


class Seats:
    """How many pages may listen at once: ``total``, and ``per_address`` from one."""

    def __init__(self, *, total: int = MAX_PAGES, per_address: int = MAX_PAGES_PER_ADDRESS):
        self.total = total
        self.per_address = per_address
        self._taken: Counter[str] = Counter()

    @property
    def taken(self) -> int:
        """Pages listening now."""
        return self._taken.total()

    def take(self, address: str) -> Seat | None:
        """A seat for a page from ``address``, or None when a cap is reached."""
        if self.taken >= self.total or self._taken[address] >= self.per_address:
            return None
        self._taken[address] += 1
        return Seat(self, address)

    def refusal(self, address: str) -> str:
        """Why a page from ``address`` was refused a seat, in words."""
        if self._taken[address] >= self.per_address:
            return (
                f"{address or 'this address'} already has {self.per_address} live pages "
                "open, the most one address may; close one or try again later"
            )
        return f"the server already serves {self.total} live pages; try again later"

    def returned(self, address: str) -> None:
        """A seat of ``address`` was released."""
        self._taken[address] -= 1
        if self._taken[address] <= 0:
            del self._taken[address]


@dataclass(slots=True)
class _Seen:
    """A run's latest event, and its update once read."""

    at: float
    event: RunEvent
    update: RunUpdate | None = None
    relayed: bool = False  # to every page listening when it came: none need catch up


class RunFeed:
    """Relays run events to the pages listening and to ``listeners``."""

    def __init__(
        self,
        nc: NATS,
        *,
        runs: RunStore,
        waiter: RunWaiter,
        listeners: list[Listener] | None = None,
        seats: Seats | None = None,
    ) -> None:
        self._nc = nc
        self._runs = runs
        self._waiter = waiter
        self._listeners = listeners or []
        self.seats = seats or Seats()
        self._pages: set[LivePage] = set()
        self._latest: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._recent: OrderedDict[str, _Seen] = OrderedDict()  # oldest first

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
    def updates(self) -> Iterator[LivePage]:
        """A page receiving every update while inside, after the recent ones."""
        page = LivePage()
        self._pages.add(page)
        try:
            self._catch_up(page)
            yield page
        finally:
            self._pages.discard(page)

    def _catch_up(self, page: LivePage) -> None:
        # What came just before may not be in Redis yet, so not in the page's own read.
        self._forget_old(asyncio.get_running_loop().time())
        for seen in self._recent.values():
            if seen.update is not None:
                page.offer(seen.update)
            elif not seen.relayed:  # else the relay under way reaches this page too
                self._relay_in_order(seen.event, to={page})

    def _forget_old(self, now: float) -> None:
        while self._recent:
            oldest = next(iter(self._recent.values()))
            if oldest.at >= now - RECENT and len(self._recent) <= RECENT_AT_MOST:
                return
            self._recent.popitem(last=False)

    async def _received(self, msg: Msg) -> None:
        try:
            event = RUN_DECODER.decode(msg.data)
        except msgspec.DecodeError:
            return  # not ours to judge here; the projector logs it
        for listener in self._listeners:
            listener(event)
        now = asyncio.get_running_loop().time()
        seen = _Seen(at=now, event=event, relayed=bool(self._pages))
        self._recent.pop(event.run_id, None)
        self._recent[event.run_id] = seen
        self._forget_old(now)
        if seen.relayed:  # else no page listens: nothing to read the run for yet
            self._relay_in_order(event)

    def _relay_in_order(self, event: RunEvent, to: set[LivePage] | None = None) -> None:
        previous = self._latest.get(event.run_id)
        task = asyncio.create_task(self._relay(event, previous, to))
        self._latest[event.run_id] = task
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._settled(event.run_id, done))

    def _settled(self, run_id: str, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._latest.get(run_id) is task:
            del self._latest[run_id]

    async def _relay(
        self, event: RunEvent, previous: asyncio.Task[None] | None, to: set[LivePage] | None
    ) -> None:
        """Send ``event``'s update to every page, or only to ``to`` (a catch-up)."""
        if previous is not None:
            await asyncio.wait([previous])
        seen = self._recent.get(event.run_id)
        current = seen if seen is not None and seen.event is event else None
        if to is not None:
            to &= self._pages  # pages that left meanwhile need nothing
            if not to or current is None:  # a newer event reaches them by itself
                return
            if current.update is not None:  # read for another page meanwhile
                self._deliver(current.update, to)
                return
        update = await self._read(event)
        if update is None:
            if current is not None and to is None:
                current.relayed = False  # so that the next page reads it for itself
            return
        if current is not None:
            current.update = update
        self._deliver(update, self._pages if to is None else to)

    async def _read(self, event: RunEvent) -> RunUpdate | None:
        try:
            run = await self._runs.get(event.run_id)
            if isinstance(event, _FINISHED) and (run is None or not run.status.terminal):
                run = await self._waiter.wait(event.run_id, PROJECTION_WAIT)
        except Exception as error:  # Redis away: the next event tries again
            log.warning("live update of %s skipped: %s", event.run_id, error)
            return None
        return _update(event, run)

    def _deliver(self, update: RunUpdate, pages: set[LivePage]) -> None:
        for page in list(pages):
            if not page.offer(update):
                self._pages.discard(page)


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
