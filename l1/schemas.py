"""The msgspec schemas shared across processes: HTTP bodies, NATS payloads, Redis values.

Constraints are named aliases so that validation errors name the bad field's path.
Structs that cross deployments accept unknown fields and give new fields defaults.
"""

from __future__ import annotations

import enum
from typing import Annotated, Generic, TypeVar

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
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
InputName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00-\x1f\x7f]+$",
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
    def rank(self) -> int:
        """Order of precedence: a lower rank never overwrites a higher one."""
        return _RANK[self]

    @property
    def terminal(self) -> bool:
        """True once the run has finished, successfully or not."""
        return self.rank == 2


_RANK = {
    RunStatus.PENDING: 0,
    RunStatus.RUNNING: 1,
    RunStatus.COMPLETED: 2,
    RunStatus.FAILED: 2,
    RunStatus.CANCELLED: 2,
}


class RunSubmission(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``POST /runs`` body, as the old server took it."""

    recipe: Name
    inputs: Annotated[list[InputName], msgspec.Meta(min_length=1, max_length=64)]
    output_name: Name | None = None


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


class RenderRequest(msgspec.Struct, kw_only=True):
    """What the API asks a worker to render; the payload of ``l1.render.<recipe>``."""

    run_id: str
    recipe: str
    recipe_hash: str
    inputs: list[InputRef]
    output_name: str
    requested_by: str
    submitted_at: str
    generation: int = 0


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
    generation: int = 0
    updated_at: str | None = None

    @property
    def items(self) -> list[str]:
        """The content hashes the run used and made, inputs first."""
        hashes = [ref.content_hash for ref in self.inputs]
        return [*hashes, self.output_hash] if self.output_hash else hashes

    def render_request(self) -> RenderRequest:
        """The request that asks a worker to render this run."""
        return RenderRequest(
            run_id=self.run_id,
            recipe=self.recipe,
            recipe_hash=self.recipe_hash,
            inputs=self.inputs,
            output_name=self.output_name,
            requested_by=self.requested_by,
            submitted_at=self.created_at,
            generation=self.generation,
        )


class RunView(Run, kw_only=True):
    """A run as ``GET /runs/{run_id}`` shows it: with the items L2 has published."""

    published: list[str] = []


T = TypeVar("T")


class Page(msgspec.Struct, Generic[T], kw_only=True):
    """One page of a list endpoint."""

    items: list[T]
    next_cursor: str | None = None
