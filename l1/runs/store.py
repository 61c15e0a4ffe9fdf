"""Runs in Redis: ``artdag:run:{run_id}`` plus sorted-set indexes for listing.

Who writes a run: the API creates it (one script that also holds its inputs and says
what its steps made before), a retry starts its next generation, a discard deletes it;
the run projector applies lifecycle events to it, and the scheduler marks the steps it
sent. Every change is a compare-and-set: it is written only over the record it was
made from (one script with what must change alongside, so many changes go to Redis in
one round trip), and a writer that lost a race reads again and re-applies its change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import msgspec
from msgspec.structs import replace

from l1 import keys
from l1.errors import Conflict
from l1.pagination import newest_first
from l1.runs.scripts import CREATE, WRITE
from l1.schemas import Page, Run, RunStatus
from l1.timestamps import micros, utc_now

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["Change", "Created", "RunStore"]

_decoder = msgspec.json.Decoder(Run)
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, kw_only=True)
class Change:
    """A run's next record, to be written only over the record it was made from
    (``before``, as stored), with what must change in the same step."""

    before: bytes | None
    after: Run
    hold: Sequence[str] = ()  # items the run now holds (refused while one is being deleted)
    release: Sequence[str] = ()  # items it lets go
    values: Mapping[str, bytes] = field(default_factory=dict)  # keys to set
    first_values: Mapping[str, bytes] = field(default_factory=dict)  # keys to set once
    scores: Mapping[str, tuple[str, int]] = field(default_factory=dict)  # zset → member, score


@dataclass(frozen=True, kw_only=True)
class Created:
    """What :meth:`RunStore.create` did: the stored run, whether this call created it,
    and the outputs its steps' cache ids already had (by cache id)."""

    run: Run
    created: bool
    outputs: dict[str, str]


class RunStore:
    """Reads and writes run records."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._create = redis.register_script(CREATE)
        self._write = redis.register_script(WRITE)

    async def create(self, run: Run, *, holding: Sequence[str]) -> Created:
        """Store ``run`` unless a run with its id exists, let it hold the items
        ``holding`` (its inputs), and look up what its steps made before, in one step.
        :class:`Conflict` if one of the items is being deleted."""
        items = list(dict.fromkeys(holding))
        steps = [step.cache_id for step in run.steps]
        reply = await self._create(
            keys=[
                keys.run(run.run_id),
                keys.RUNS,
                keys.runs_with_status(run.status),
                *(keys.references(h) for h in items),
                *(keys.tombstone(h) for h in items),
                *(keys.step(cache_id) for cache_id in steps),
                keys.RUN_IDS,
            ],
            args=[_encoder.encode(run), run.run_id, micros(run.created_at), len(items), len(steps)],
        )
        outcome = _text(reply[0])
        if outcome == "exists":
            return Created(run=_decoder.decode(reply[1]), created=False, outputs={})
        if outcome == "deleting":
            item = items[int(reply[1]) - 1]
            raise Conflict(f"input {item} is being deleted; upload it again to use it")
        found = {cache_id: _text(out) for cache_id, out in zip(steps, reply[1:], strict=True)}
        return Created(run=run, created=True, outputs={c: o for c, o in found.items() if o})

    async def get(self, run_id: str) -> Run | None:
        """The run, or None."""
        raw = await self._redis.get(keys.run(run_id))
        return None if raw is None else _decoder.decode(raw)

    async def get_raw(self, run_id: str) -> bytes | None:
        """The run's stored JSON, or None."""
        return cast("bytes | None", await self._redis.get(keys.run(run_id)))

    async def read(self, run_ids: Sequence[str]) -> dict[str, bytes | None]:
        """The stored JSON of each of ``run_ids`` (None where there is none)."""
        if not run_ids:
            return {}
        raws = cast("list[bytes | None]", await self._redis.mget([keys.run(r) for r in run_ids]))
        return dict(zip(run_ids, raws, strict=True))

    async def get_many(self, run_ids: list[str]) -> list[Run]:
        """The runs that exist among ``run_ids``, in the same order."""
        raws = await self.read(run_ids)
        return [_decoder.decode(raw) for raw in raws.values() if raw is not None]

    async def page(
        self, *, limit: int, cursor: str | None, status: RunStatus | None = None
    ) -> Page[Run]:
        """Runs newest first, optionally only those in ``status``."""
        key = keys.runs_with_status(status) if status else keys.RUNS
        run_ids, next_cursor = await newest_first(self._redis, key, limit=limit, cursor=cursor)
        return Page(items=await self.get_many(run_ids), next_cursor=next_cursor)

    async def write(self, changes: Sequence[Change]) -> list[str | None]:
        """Write each change in one round trip; for each, None when written, ``"moved"``
        when the stored record is no longer the one it was made from (nothing written),
        or the item of ``hold`` being deleted (nothing written)."""
        if not changes:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for change in changes:
                await self._write(*_script_call(change), client=pipe)
            replies = await pipe.execute(raise_on_error=True)
        return [
            _outcome(change, _text(reply)) for change, reply in zip(changes, replies, strict=True)
        ]

    async def update(self, run_id: str, change: Callable[[Run | None], Run | None]) -> Run | None:
        """Apply ``change`` to the stored run atomically and return the result.

        ``change`` gets the current run (or None) and returns the new one, or None to
        leave it as it is. It may be called more than once if another writer races.
        """
        while True:
            raw = await self.get_raw(run_id)
            current = None if raw is None else _decoder.decode(raw)
            updated = change(current)
            if updated is None or updated == current:
                return current
            updated = stamped(updated)
            [outcome] = await self.write([Change(before=raw, after=updated)])
            if outcome is None:
                return updated

    async def delete(self, run: Run) -> None:
        """Remove the run record and its index entries."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.run(run.run_id))
            pipe.zrem(keys.RUNS, run.run_id)
            pipe.zrem(keys.RUN_IDS, run.run_id)
            for status in RunStatus:
                pipe.zrem(keys.runs_with_status(status), run.run_id)
            await pipe.execute()


def decode(raw: bytes) -> Run:
    """A stored run record."""
    return _decoder.decode(raw)


def stamped(run: Run) -> Run:
    """``run`` as of now (``updated_at``, which the reconciler reads)."""
    return replace(run, updated_at=utc_now())


def _script_call(change: Change) -> tuple[list[str], list[str | bytes | int]]:
    after = change.after
    before = None if change.before is None else _decoder.decode(change.before)
    old_status = before.status if before is not None else after.status
    finished = after.status.terminal and not (before is not None and before.status.terminal)
    zsets = list(change.scores.items())
    script_keys = [
        keys.run(after.run_id),
        keys.RUNS,
        keys.runs_with_status(old_status),
        keys.runs_with_status(after.status),
        *(keys.references(h) for h in change.hold),
        *(keys.tombstone(h) for h in change.hold),
        *(keys.references(h) for h in change.release),
        *change.values,
        *change.first_values,
        *(key for key, _ in zsets),
        keys.RUN_IDS,
    ]
    args: list[str | bytes | int] = [
        change.before or b"",
        _encoder.encode(after),
        after.run_id,
        micros(after.created_at),
        int(finished),
        keys.RUNS_FINISHED_CHANNEL,
        len(change.hold),
        len(change.release),
        len(change.values),
        len(change.first_values),
        len(zsets),
        *change.values.values(),
        *change.first_values.values(),
        *(part for _, (member, score) in zsets for part in (member, score)),
    ]
    return script_keys, args


def _outcome(change: Change, reply: str) -> str | None:
    if reply == "written":
        return None
    if reply.startswith("deleting:"):
        return change.hold[int(reply.split(":")[1]) - 1]
    return reply


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
