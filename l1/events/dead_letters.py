"""Render requests that could never succeed, kept on ``l1.dead.<recipe>.<run_id>``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from nats.js.errors import NotFoundError

from l1.events.streams import DEAD_STREAM

if TYPE_CHECKING:
    from nats.js import JetStreamContext

__all__ = ["DeadLetter", "DeadLetters"]


class DeadLetter(msgspec.Struct, kw_only=True):
    """One dead render request and why it died."""

    run_id: str
    recipe: str
    reason: str
    sequence: int
    request: msgspec.Raw


class DeadLetters:
    """Reads the dead-letter stream, newest first."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def latest(self, *, limit: int, before: int | None = None) -> list[DeadLetter]:
        """Up to ``limit`` dead letters, the most recent first; with ``before``, only
        those older than the one with that sequence number."""
        try:
            info = await self._js.stream_info(DEAD_STREAM)
        except NotFoundError:
            return []
        letters: list[DeadLetter] = []
        sequence = info.state.last_seq if before is None else min(before - 1, info.state.last_seq)
        # An empty stream reports first_seq 0, and there is no message 0 to ask for.
        while sequence >= max(info.state.first_seq, 1) and len(letters) < limit:
            try:
                msg = await self._js.get_msg(DEAD_STREAM, sequence)
            except NotFoundError:  # deleted from the middle of the stream
                sequence -= 1
                continue
            _, _, recipe, run_id = (msg.subject or "").split(".", 3)
            letters.append(
                DeadLetter(
                    run_id=run_id,
                    recipe=recipe,
                    reason=(msg.headers or {}).get("L1-Reason", ""),
                    sequence=sequence,
                    request=msgspec.Raw(msg.data or b"{}"),
                )
            )
            sequence -= 1
        return letters
