"""Publishing a run to L2.

A publish claims the run for as long as L2 takes to answer: of many publishes of one run
at once, one asks L2 and the others are refused (409), and the run cannot be discarded
while L2 reads it back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from l1.errors import Conflict
from l1.runs.store import RunAction
from l1.schemas import RunStatus

if TYPE_CHECKING:
    from l1.api.services.runs import RunService
    from l1.cache.references import References
    from l1.l2_client import L2Client
    from l1.schemas import Run

__all__ = ["PublishReport", "PublishService"]


class PublishReport(msgspec.Struct, kw_only=True):
    """What L2 published."""

    run_id: str
    published: list[str]
    l2: dict[str, Any]


class PublishService:
    """Asks L2 to publish completed runs and protects what it published."""

    def __init__(
        self, *, runs: RunService, l2: L2Client, references: References, public_url: str
    ) -> None:
        self._runs = runs
        self._l2 = l2
        self._references = references
        self._public_url = public_url

    async def publish(self, run_id: str) -> PublishReport:
        """Ask L2 to publish the run (a full id); L2 reads the run back from this server
        first. :class:`Conflict` while another request publishes or discards it."""
        async with self._runs.claimed(run_id, RunAction.PUBLISH, check=_completed) as run:
            answer = await self._l2.publish_run(run_id, l1_server=self._public_url)
            # Marked at once, so the items are protected before L2 is next asked.
            await self._references.mark_published(run.items)
        return PublishReport(run_id=run_id, published=run.items, l2=answer)


def _completed(run: Run) -> None:
    if run.status is not RunStatus.COMPLETED:
        raise Conflict(f"run {run.run_id} is {run.status}; only a completed run can be published")
