"""Finding lost render requests again.

On start-up and on a timer, every run still pending or running whose record has not
moved for a while is checked against JetStream: if its render request is no longer
queued (``l1.render.<recipe>.<run_id>.<node>``), it is published again as a new copy.
A request lost anywhere (an API that died between recording and publishing, a stream
that lost data) is found again; a duplicate render is harmless because outputs are
content-addressed.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from nats.js.errors import NotFoundError

from l1.events import subjects
from l1.events.streams import RENDER_STREAM
from l1.schemas import RunStatus
from l1.timestamps import micros

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from l1.runs.scheduler import Scheduler
    from l1.runs.store import RunStore
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
        scheduler: Scheduler,
        stale_after: float,
    ) -> None:
        self._js = js
        self._runs = runs
        self._scheduler = scheduler
        self._stale_after = stale_after

    async def once(self) -> str | None:
        """One pass; says how many requests were published again, if any."""
        found = await self.reconcile_once()
        return f"republished {found} lost render request(s)" if found else None

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
        # The first copy's id may still be in JetStream's duplicate window, which would
        # drop this one without a word: a re-sent request is a copy of its own.
        copy = f"resend-{uuid.uuid4().hex}"
        return await self._scheduler.resend_lost(run, queued=self._queued, copy=copy)

    async def _queued(self, request: RenderRequest) -> bool:
        subject = subjects.render(request.recipe, request.run_id, request.node_id)
        try:
            await self._js.get_last_msg(RENDER_STREAM, subject)
        except NotFoundError:
            return False
        return True
