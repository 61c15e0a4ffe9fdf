"""Publishing a run to L2."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from l1.errors import Conflict
from l1.schemas import RunStatus

if TYPE_CHECKING:
    from l1.api.services.runs import RunService
    from l1.cache.references import References
    from l1.l2_client import L2Client

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
        """Ask L2 to publish the run; L2 reads the run back from this server first."""
        run = await self._runs.get(run_id)
        if run.status is not RunStatus.COMPLETED:
            raise Conflict(f"run {run_id} is {run.status}; only a completed run can be published")
        answer = await self._l2.publish_run(run_id, l1_server=self._public_url)
        # Marked at once, so the items are protected before L2 is next asked.
        await self._references.mark_published(run.items)
        return PublishReport(run_id=run_id, published=run.items, l2=answer)
