"""The msgspec schemas shared across processes: HTTP bodies, NATS payloads, Redis values.

Constraints are named aliases so that validation errors name the bad field's path.
Structs that cross deployments accept unknown fields and give new fields defaults.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec

from l1.identifiers import HASH_PATTERN

__all__ = [
    "ContentHash",
    "Infrastructure",
    "InputRef",
    "NamedHash",
    "Page",
    "Provenance",
    "RenderRequest",
    "Run",
    "RunStatus",
    "RunSubmission",
    "RunView",
    "SegmentPlan",
    "SegmentSpan",
    "SegmentView",
    "StepState",
    "StoredItem",
]

ContentHash = Annotated[
    str,
    msgspec.Meta(
        pattern=HASH_PATTERN,
        description="SHA3-256 of the content, 64 lowercase hex characters",
        examples=["a" * 64],
    ),
]
RunId = Annotated[str, msgspec.Meta(pattern=HASH_PATTERN, description="The run's id")]
# No control characters, none of the invisible or direction-changing ones that make a
# name read as something else, and no final newline (which `$` alone would let through).
SHOWN = r"^[^\x00-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]+$(?!\n)"
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=SHOWN)]
InputName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=200,
        pattern=SHOWN,
        description="A content hash or the name of a known asset",
    ),
]


class RunStatus(enum.StrEnum):
    """Where a run is in its life. Terminal statuses never change again."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """True once the run has finished, successfully or not."""
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


class RunSubmission(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``POST /runs`` body, as the old server took it, plus optional params.

    ``recipe`` is an effect name or a registered recipe; ``inputs`` a list (in the
    recipe's input order) or a mapping of recipe input name to hash or asset name.
    ``params`` are an effect's parameters, or for a recipe ``{"node": {...}}``.
    """

    recipe: Name
    inputs: (
        Annotated[list[InputName], msgspec.Meta(min_length=1, max_length=32)]
        | Annotated[dict[Name, InputName], msgspec.Meta(min_length=1, max_length=32)]
    )
    output_name: Name | None = None
    params: Annotated[dict[Name, Any], msgspec.Meta(max_length=64)] = {}


class NamedHash(msgspec.Struct, kw_only=True):
    """A name with the content hash it stands for (the ecosystem's reference shape)."""

    name: str
    content_hash: str


class InputRef(NamedHash, kw_only=True):
    """One input of a run: what the client called it and the hash it resolved to."""


class Infrastructure(msgspec.Struct, kw_only=True):
    """Which software rendered an output, on which hardware."""

    software: NamedHash
    hardware: NamedHash


class Provenance(msgspec.Struct, kw_only=True):
    """How one output was made. Field names are the Art DAG ecosystem's."""

    task_id: str
    run_id: str
    rendered_at: str
    rendered_by: str
    output: NamedHash
    inputs: list[NamedHash]
    effects: list[NamedHash]
    infrastructure: Infrastructure


StepStatus = Literal["pending", "dispatched", "completed", "cached"]


class SegmentSpan(msgspec.Struct, frozen=True, kw_only=True):
    """One part of a step split by time (:mod:`l1.runs.segments`): frames
    ``first_frame`` to ``first_frame + frames`` of the whole clip, shown from ``start``
    seconds of the source's clock until ``end`` (None: to the end)."""

    of_node: str  # the step it is a part of
    index: int
    count: int  # parts the step was split into
    start: float
    end: float | None
    first_frame: int
    frames: int
    # Cut from the whole clip (seek, then drop the frames before ``start``); otherwise
    # its input is the same part of an earlier step, whole.
    from_source: bool = True


class SegmentPlan(msgspec.Struct, frozen=True, kw_only=True):
    """How a worker split a step over a long video: its parts, and the format and
    video codec every part (and the joined output) is written in."""

    format: str
    codec: str
    frames: int
    segments: list[SegmentSpan]


class StepState(msgspec.Struct, kw_only=True):
    """One step of a run's recipe and how far it is."""

    node_id: str
    cache_id: str
    effect: str
    effect_hash: str
    params: dict[str, Any] = {}
    inputs: list[str] = []  # node ids; recipe inputs are named by their SOURCE node
    status: StepStatus = "pending"
    output_hash: str | None = None
    # A per-frame effect, which a worker may split by time over a long video.
    segmentable: bool = False
    segment: SegmentSpan | None = None  # this step is one part of a split step
    worker: str | None = None  # the worker of its latest attempt
    attempts: int = 0

    @property
    def done(self) -> bool:
        """True once the step's output is known."""
        return self.status in ("completed", "cached")


class RenderRequest(msgspec.Struct, kw_only=True):
    """One step for a worker to render; the payload of ``l1.render.<recipe>.<run_id>.<node>``.

    ``final`` marks the recipe's output step, whose worker reports the run completed
    with provenance naming ``run_inputs`` and ``effects``.
    """

    run_id: str
    recipe: str
    recipe_hash: str
    inputs: list[InputRef]
    output_name: str
    requested_by: str
    submitted_at: str
    generation: int = 0
    node_id: str
    effect: str
    effect_hash: str
    params: dict[str, Any] = {}
    final: bool = True
    known_output: str | None = None
    run_inputs: list[InputRef] = []
    effects: list[NamedHash] = []
    segmentable: bool = False
    segment: SegmentSpan | None = None


class Run(msgspec.Struct, kw_only=True, omit_defaults=False):
    """A run as the API shows it and Redis stores it at ``artdag:run:{run_id}``."""

    run_id: str
    recipe: str
    recipe_hash: str
    inputs: list[InputRef]
    output_name: str
    status: RunStatus = RunStatus.PENDING
    created_at: str
    started_at: str | None = None
    completed_at: str | None = None
    output_hash: str | None = None
    provenance: Provenance | None = None
    error: str | None = None
    progress: float | None = None
    requested_by: str = ""
    attempts: int = 0
    worker: str | None = None  # the worker that took the latest attempt
    generation: int = 0
    updated_at: str | None = None
    bindings: dict[str, str] = {}  # recipe input name → content hash
    steps: list[StepState] = []

    @property
    def intermediates(self) -> list[str]:
        """Outputs of the steps before the last."""
        return [s.output_hash for s in self.steps[:-1] if s.output_hash]

    @property
    def items(self) -> list[str]:
        """The content hashes the run used and made: inputs, intermediates, output."""
        hashes = [ref.content_hash for ref in self.inputs] + self.intermediates
        if self.output_hash:
            hashes.append(self.output_hash)
        return list(dict.fromkeys(hashes))


class SegmentView(msgspec.Struct, frozen=True, kw_only=True):
    """One part of a split step as ``GET /runs/{run_id}`` lists it: its time range in
    seconds (``end`` None: to the end of the clip), how far it is, who rendered it."""

    index: int
    start: float
    end: float | None
    frames: int
    status: StepStatus
    worker: str | None = None
    attempts: int = 0
    output_hash: str | None = None


class RunView(Run, kw_only=True):
    """A run as ``GET /runs/{run_id}`` shows it: with the items L2 has published and,
    for each step split by time, its parts in order (keyed by the step's node id)."""

    published: list[str] = []
    segments: dict[str, list[SegmentView]] = {}


class StoredItem(msgspec.Struct, frozen=True, kw_only=True):
    """What the content-addressed store holds at one address; ``created`` when this
    store call wrote it (201) rather than finding it there (200)."""

    content_hash: str
    size: int
    content_type: str
    created: bool = False


T = TypeVar("T")


class Page(msgspec.Struct, Generic[T], kw_only=True):
    """One page of a list endpoint."""

    items: list[T]
    next_cursor: str | None = None
