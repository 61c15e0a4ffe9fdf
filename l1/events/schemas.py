"""Event payloads: a public interface, documented in the README.

Each stream carries one tagged union, discriminated by the ``event`` field. Unknown
fields are tolerated so that newer publishers do not break older subscribers.

Every event is built by its own constructor, which sets its de-duplication id
(``Nats-Msg-Id``) from the one table below, where render requests' ids are too.
JetStream drops a second message with the same id within its duplicate window, so an
id names one happening: a publish retried after a lost acknowledgement is dropped, a
new happening never is.
"""

from __future__ import annotations

import uuid

import msgspec

from l1.events import subjects
from l1.schemas import Provenance, RenderRequest, Run, SegmentPlan, StoredItem
from l1.timestamps import micros, utc_now

__all__ = [
    "CACHE_DECODER",
    "MESSAGE_IDS",
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
    "RunSplit",
    "RunStarted",
    "RunSubmitted",
    "run_message_id",
]

# ``{run}`` is the run id, when the run was accepted (µs since the epoch) and its
# generation: a retried run, or one discarded and submitted again, is a new run here.
MESSAGE_IDS = {
    # The effect too: a split step's join is sent under the step's own node id.
    "render": "{run}.render.{node_id}.{effect}.{copy}",
    "submitted": "{run}.submitted",
    "started": "{run}.started.{attempt}",
    "progress": "{run}.progress.{node_id}.{percent}",
    "step": "{run}.step.{node_id}",
    "split": "{run}.split.{node_id}",
    "completed": "{run}.completed",
    "failed": "{run}.failed",
    "cancelled": "{run}.cancelled",
    "discarded": "{run}.discarded",
    "stored": "{content_hash}.stored.{write}",
    "deleted": "{content_hash}.deleted.{claim}",
}


def run_message_id(kind: str, of: Run | RenderRequest, **fields: object) -> str:
    """The de-duplication id of a message of ``kind`` about the run ``of``."""
    accepted = of.created_at if isinstance(of, Run) else of.submitted_at
    run = f"{of.run_id}.{micros(accepted)}.{of.generation}"
    return MESSAGE_IDS[kind].format(run=run, **fields)


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

    @classmethod
    def of(cls, run: Run) -> RunSubmitted:
        """The run was accepted (or accepted again, as its next generation)."""
        return cls(
            event_id=run_message_id("submitted", run),
            at=utc_now(),
            run_id=run.run_id,
            generation=run.generation,
            run=run,
        )


class RunStarted(_RunEventBase, tag="started"):
    """A worker took one of the run's render requests, the step ``node_id``
    (``attempt`` counts deliveries)."""

    worker: str
    attempt: int = 1
    node_id: str | None = None

    @classmethod
    def of(cls, request: RenderRequest, *, worker: str, attempt: int) -> RunStarted:
        """``worker`` started rendering ``request`` for the ``attempt``-th time."""
        return cls(
            event_id=run_message_id("started", request, attempt=f"{request.node_id}.{attempt}"),
            at=utc_now(),
            run_id=request.run_id,
            generation=request.generation,
            worker=worker,
            attempt=attempt,
            node_id=request.node_id,
        )


class RunSplit(_RunEventBase, tag="split"):
    """A worker split the step ``node_id`` by time (a per-frame effect over a long
    video): its parts go to the workers, then a ``join`` (effect ``join_hash``)."""

    node_id: str
    plan: SegmentPlan
    join_hash: str

    @classmethod
    def of(cls, request: RenderRequest, *, plan: SegmentPlan, join_hash: str) -> RunSplit:
        """The step of ``request`` is to be rendered as the parts of ``plan``."""
        return cls(
            event_id=run_message_id("split", request, node_id=request.node_id),
            at=utc_now(),
            run_id=request.run_id,
            generation=request.generation,
            node_id=request.node_id,
            plan=plan,
            join_hash=join_hash,
        )


class RunProgress(_RunEventBase, tag="progress"):
    """How far the run is: a step's render reports ``percent`` of that step, and a
    finished step (not the last) reports its ``output_hash``."""

    percent: float
    message: str = ""
    node_id: str | None = None
    output_hash: str | None = None

    @classmethod
    def of(cls, request: RenderRequest, *, percent: float) -> RunProgress:
        """The step of ``request`` is ``percent`` done."""
        return cls(
            event_id=run_message_id("progress", request, node_id=request.node_id, percent=percent),
            at=utc_now(),
            run_id=request.run_id,
            generation=request.generation,
            percent=percent,
            node_id=request.node_id,
        )

    @classmethod
    def step_done(cls, request: RenderRequest, *, output_hash: str) -> RunProgress:
        """The step of ``request`` (not the last) made ``output_hash``."""
        return cls(
            event_id=run_message_id("step", request, node_id=request.node_id),
            at=utc_now(),
            run_id=request.run_id,
            generation=request.generation,
            percent=100.0,
            node_id=request.node_id,
            output_hash=output_hash,
        )


class RunCompleted(_RunEventBase, tag="completed"):
    """The output is in the cache; ``provenance`` says how it was made. ``worker``,
    ``attempt`` and ``started_at`` say who rendered it and since when (a render quick
    enough to send no ``started`` event of its own says it here)."""

    output_hash: str
    provenance: Provenance
    worker: str = ""
    attempt: int = 1
    started_at: str | None = None

    @classmethod
    def of(
        cls,
        request: RenderRequest,
        *,
        provenance: Provenance,
        worker: str = "",
        attempt: int = 1,
        started_at: str | None = None,
    ) -> RunCompleted:
        """The run's output step made the output ``provenance`` describes."""
        return cls(
            event_id=run_message_id("completed", request),
            at=utc_now(),
            run_id=request.run_id,
            generation=request.generation,
            output_hash=provenance.output.content_hash,
            provenance=provenance,
            worker=worker,
            attempt=attempt,
            started_at=started_at,
        )


class RunFailed(_RunEventBase, tag="failed"):
    """The run cannot succeed; ``error`` says why."""

    error: str
    attempt: int = 1

    @classmethod
    def of(cls, request: RenderRequest, *, error: str, attempt: int) -> RunFailed:
        """Rendering ``request`` failed for good."""
        return cls(
            event_id=run_message_id("failed", request),
            at=utc_now(),
            run_id=request.run_id,
            generation=request.generation,
            error=error,
            attempt=attempt,
        )


class RunCancelled(_RunEventBase, tag="cancelled"):
    """Someone asked the run to stop; a worker holding it stops rendering."""

    reason: str = "cancelled"

    @classmethod
    def of(cls, run: Run) -> RunCancelled:
        """Stop ``run`` (its current generation)."""
        return cls(
            event_id=run_message_id("cancelled", run),
            at=utc_now(),
            run_id=run.run_id,
            generation=run.generation,
        )


class RunDiscarded(_RunEventBase, tag="discarded"):
    """The run and its activity were removed."""

    @classmethod
    def of(cls, run: Run) -> RunDiscarded:
        """``run`` was discarded."""
        return cls(
            event_id=run_message_id("discarded", run),
            at=utc_now(),
            run_id=run.run_id,
            generation=run.generation,
        )


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
        """``item`` was stored, by an upload, an import, a render (``source``)."""
        return cls(
            event_id=MESSAGE_IDS["stored"].format(
                content_hash=item.content_hash, write=uuid.uuid4().hex
            ),
            at=utc_now(),
            content_hash=item.content_hash,
            size=item.size,
            content_type=item.content_type,
            source=source,
        )


class CacheDeleted(_CacheEventBase, tag="deleted"):
    """An item was removed from the store."""

    @classmethod
    def of(cls, content_hash: str, *, claim: str) -> CacheDeleted:
        """The deletion that held ``claim`` removed ``content_hash``."""
        return cls(
            event_id=MESSAGE_IDS["deleted"].format(content_hash=content_hash, claim=claim),
            at=utc_now(),
            content_hash=content_hash,
        )


RunEvent = (
    RunSubmitted
    | RunStarted
    | RunProgress
    | RunSplit
    | RunCompleted
    | RunFailed
    | RunCancelled
    | RunDiscarded
)
CacheEvent = CacheStored | CacheDeleted
Event = RunEvent | CacheEvent

RUN_DECODER: msgspec.json.Decoder[RunEvent] = msgspec.json.Decoder(RunEvent)
CACHE_DECODER: msgspec.json.Decoder[CacheEvent] = msgspec.json.Decoder(CacheEvent)
