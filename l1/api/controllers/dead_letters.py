"""``/dead``: render requests that could never succeed."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from l1.events.dead_letters import DeadLetter, DeadLetters

__all__ = ["DeadLetterController"]


class DeadLetterController(Controller):
    """Dead letters, for inspection; ``POST /runs/{run_id}/retry`` sends one again."""

    path = "/dead"
    tags = ["runs"]

    @get("/", summary="List dead render requests, newest first")
    async def list_dead(
        self,
        dead_letters: NamedDependency[DeadLetters],
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> list[DeadLetter]:
        """The most recent dead letters, each with the reason its run failed."""
        return await dead_letters.latest(limit=limit)
