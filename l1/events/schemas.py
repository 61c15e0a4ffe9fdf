"""Event payloads: a public interface, documented in the README.

Each stream carries one tagged union, discriminated by the ``event`` field. Unknown
fields are tolerated so that newer publishers do not break older subscribers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from l1.events import subjects
from l1.schemas import Provenance, Run
from l1.timestamps import utc_now

if TYPE_CHECKING:
    from l1.cache.store import StoredItem

__all__ = [
    "CACHE_DECODER",
    "RUN_DECODER",
    "CacheDeleted",
    "CacheEvent",
    "CacheStored",
    "Event",
    "RunCancelled",
    "RunCompleted",
    "RunDiscarded",
    "RunEvent",
    "RunFailed",
    "RunProgress",
    "RunStarted",
    "RunSubmitted",
]


class _RunEventBase(msgspec.Struct, kw_only=True, tag_field="event"):
    event_id: str
    at: str
    run_id: str
    # How many times the run had been retried when this happened; events of an
    # earlier generation no longer change the run.
    generation: int = 0

    @property
    def subject(self) -> str:
        """``l1.runs.<run_id>.<event>``."""
        return subjects.run_event(self.run_id, self.__struct_config__.tag)  # type: ignore[arg-type]


class RunSubmitted(_RunEventBase, tag="submitted"):
    """The API accepted a run; ``run`` is its record as first stored."""

    run: Run


class RunStarted(_RunEventBase, tag="started"):
    """A worker took the run's render request (``attempt`` counts deliveries)."""

    worker: str
    attempt: int = 1


class RunProgress(_RunEventBase, tag="progress"):
    """How far the run is: a step's render reports ``percent`` of that step, and a
    finished step (not the last) reports its ``output_hash``."""

    percent: float
    message: str = ""
    node_id: str | None = None
    output_hash: str | None = None


class RunCompleted(_RunEventBase, tag="completed"):
    """The output is in the cache; ``provenance`` says how it was made."""

    output_hash: str
    provenance: Provenance


class RunFailed(_RunEventBase, tag="failed"):
    """The run cannot succeed; ``error`` says why."""

    error: str
    attempt: int = 1


class RunCancelled(_RunEventBase, tag="cancelled"):
    """Someone asked the run to stop; a worker holding it stops rendering."""

    reason: str = "cancelled"


class RunDiscarded(_RunEventBase, tag="discarded"):
    """The run and its activity were removed."""


class _CacheEventBase(msgspec.Struct, kw_only=True, tag_field="event"):
    event_id: str
    at: str
    content_hash: str

    @property
    def subject(self) -> str:
        """``l1.cache.<content_hash>.<event>``."""
        return subjects.cache_event(self.content_hash, self.__struct_config__.tag)  # type: ignore[arg-type]


class CacheStored(_CacheEventBase, tag="stored"):
    """An item was written to the content-addressed store."""

    size: int
    content_type: str
    source: str = ""

    @classmethod
    def of(cls, item: StoredItem, *, source: str) -> CacheStored:
        """The event announcing ``item``; its id makes a repeat a duplicate."""
        return cls(
            event_id=f"{item.content_hash}.stored",
            at=utc_now(),
            content_hash=item.content_hash,
            size=item.size,
            content_type=item.content_type,
            source=source,
        )


class CacheDeleted(_CacheEventBase, tag="deleted"):
    """An item was removed from the store."""


RunEvent = (
    RunSubmitted | RunStarted | RunProgress | RunCompleted | RunFailed | RunCancelled | RunDiscarded
)
CacheEvent = CacheStored | CacheDeleted
Event = RunEvent | CacheEvent

RUN_DECODER: msgspec.json.Decoder[RunEvent] = msgspec.json.Decoder(RunEvent)
CACHE_DECODER: msgspec.json.Decoder[CacheEvent] = msgspec.json.Decoder(CacheEvent)
