"""``/dead``: render requests that could never succeed."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from l1.api.openapi import DEPENDENCIES, errors
from l1.errors import InvalidInput
from l1.events.dead_letters import DeadLetter, DeadLetters
from l1.schemas import Page

__all__ = ["DeadLetterController"]


class DeadLetterController(Controller):
    """Dead letters, for inspection; ``POST /runs/{run_id}/retry`` sends one again."""

    path = "/dead"
    tags = ["runs"]

    @get("/", summary="List dead render requests, newest first", responses=errors(DEPENDENCIES))
    async def list_dead(
        self,
        dead_letters: NamedDependency[DeadLetters],
        limit: Annotated[
            int, QueryParameter(ge=1, le=1000, description="Items per page, 1 to 1000")
        ] = 100,
        cursor: Annotated[
            str | None,
            QueryParameter(
                max_length=20,
                description="From a previous page's `next_cursor`: a sequence number",
                # For the schema only: anything else is 400, saying so.
                schema_extra={"pattern": "^0*[1-9][0-9]*$"},
            ),
        ] = None,
    ) -> Page[DeadLetter]:
        """The most recent dead letters, each with the reason its run failed."""
        letters = await dead_letters.latest(limit=limit, before=_sequence(cursor))
        # A page cut short by the limit may have more behind it; the cursor is the
        # sequence number of its last letter.
        last = letters[-1].sequence if len(letters) == limit else None
        return Page(items=letters, next_cursor=None if last is None or last <= 1 else str(last))


def _sequence(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not (cursor.isascii() and cursor.isdigit()) or int(cursor) < 1:
        raise InvalidInput("cursor is not one this server gave out")
    return int(cursor)
