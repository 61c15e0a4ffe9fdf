"""Finding lost render requests again.

On start-up and on a timer, every run still pending or running whose record has not
moved for a while is checked against JetStream: if its render request is no longer
queued (``l1.render.<recipe>.<run_id>``), it is published again under the same
de-duplication id. A request lost anywhere (an API that died between recording and
publishing, a stream that lost data) is found again; a duplicate render is harmless
because outputs are content-addressed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from nats.js.errors import NotFoundError
from redis.exceptions import RedisError

from l1.events import subjects
from l1.events.projections import merge_dispatched
from l1.events.streams import RENDER_STREAM
from l1.schemas import RunStatus
from l1.timestamps import micros

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from l1.dispatch import Dispatcher
    from l1.run_store import RunStore
    from l1.schemas import RenderRequest, Run

__all__ = ["Reconciler"]

log = logging.getLogger(__name__)


class Reconciler:
    """Republishes the render requests of stale unfinished runs."""

    def __init__(
        self,
        js: JetStreamContext,
        *,
        runs: RunStore,
        dispatcher: Dispatcher,
        every: float,
        stale_after: float,
    ) -> None:
        self._js = js
        self._runs = runs
        self._dispatcher = dispatcher
        self._every = every
        self._stale_after = stale_after

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile now, then every ``every`` seconds until ``stop`` is set."""
        while not stop.is_set():
            try:
                found = await self.reconcile_once()
            except (RedisError, OSError, TimeoutError) as error:
                log.warning("reconciliation skipped: %s", error)
            else:
                if found:
                    log.warning("republished %d lost render request(s)", found)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._every)

    async def reconcile_once(self) -> int:
        """One pass; returns how many requests were published again."""
        republished = 0
        for status in (RunStatus.PENDING, RunStatus.RUNNING):
            cursor = None
            while True:
                page = await self._runs.page(limit=500, cursor=cursor, status=status)
                for run in page.items:
                    if self._stale(run):
                        republished += await self._resend_lost(run)
                if not page.next_cursor:
                    break
                cursor = page.next_cursor
        return republished

    def _stale(self, run: Run) -> bool:
        last = run.updated_at or run.created_at
        age = datetime.now(UTC).timestamp() - micros(last) / 1_000_000
        return age >= self._stale_after

    async def _resend_lost(self, run: Run) -> int:
        prepared, requests = await self._dispatcher.prepare(run, resend=True)
        lost = [r for r in requests if not await self._queued(r)]
        if prepared.steps != run.steps:
            await self._runs.update(run.run_id, lambda r: merge_dispatched(r, prepared))
        # The first copy's id may still be in JetStream's duplicate window, which would
        # drop this one without a word: a re-sent request gets an id of its own.
        await self._dispatcher.send(lost, suffix=f".resend.{uuid.uuid4().hex}")
        return len(lost)

    async def _queued(self, request: RenderRequest) -> bool:
        subject = subjects.render(request.recipe, request.run_id, request.node_id)
        try:
            await self._js.get_last_msg(RENDER_STREAM, subject)
        except NotFoundError:
            return False
        return True
