"""Runs in Redis: ``artdag:run:{run_id}`` plus sorted-set indexes for listing.

Who writes a run: the API creates it (one script that also holds its inputs and says
what its steps made before), a retry starts its next generation, a discard deletes it;
the run projector applies lifecycle events to it, and the scheduler marks the steps it
sent. Every change is a compare-and-set: it is written only over the record it was
made from (one script with what must change alongside, so many changes go to Redis in
one round trip), and a writer that lost a race reads again and re-applies its change.

The actions people take on a run get one answer each, however many ask at once: each
is checked against the stored record and takes effect in one script that refuses if
the record moved meanwhile. A retry is such a write. A discard or a publish, which take
a while (they ask L2), first claim the run (:meth:`RunStore.claimed`): one at a time,
and no retry while either holds it. A cancel is recorded once per generation
(:meth:`RunStore.ask_cancel`); the worker and the projector learn of it by its event.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import msgspec
from msgspec.structs import replace
from redis.exceptions import RedisError

from l1 import keys
from l1.errors import Conflict, NotFound
from l1.pagination import newest_first
from l1.runs.scripts import ASK_CANCEL, CLAIM, CREATE, RELEASE, RENEW, WRITE
from l1.schemas import Page, Run, RunStatus
from l1.timestamps import micros, utc_now

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["Change", "Created", "RunAction", "RunStore"]

log = logging.getLogger(__name__)

_decoder = msgspec.json.Decoder(Run)
_encoder = msgspec.json.Encoder()

# A claim whose holder died lets go of its run after this long; a live holder renews it
# every third of it, so a slow L2 never makes it lapse.
CLAIM_SECONDS = 15.0
# A cancel asked for is remembered this long: another cancel of the same generation is
# refused meanwhile, and by the run's status once it reads cancelled.
CANCEL_SECONDS = 3600.0
# How often an action reads again a run that keeps changing under it before it gives up.
ATTEMPTS = 50


class RunAction(enum.StrEnum):
    """What may claim a run (the word says what the run is being)."""

    DISCARD = "discarded"
    PUBLISH = "published"


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
    exclusive: bool = False  # refused while a discard or a publish claims the run


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
        self._claim = redis.register_script(CLAIM)
        self._ask_cancel = redis.register_script(ASK_CANCEL)
        self._renew = redis.register_script(RENEW)
        self._release = redis.register_script(RELEASE)

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
        when the stored record is no longer the one it was made from, ``"claimed:"``
        and the claim when the change is exclusive and a discard or a publish holds the
        run, or the item of ``hold`` being deleted (nothing written but for None)."""
        if not changes:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for change in changes:
                await self._write(*_script_call(change), client=pipe)
            replies = await pipe.execute(raise_on_error=True)
        return [
            _outcome(change, _text(reply)) for change, reply in zip(changes, replies, strict=True)
        ]

    async def write_exclusive(self, change: Change) -> bool:
        """Write ``change`` unless a discard or a publish has the run; False when the
        stored record is no longer the one it was made from (nothing written).
        :class:`Conflict` naming what holds the run, or the item of ``hold`` being
        deleted."""
        [outcome] = await self.write([dataclasses.replace(change, exclusive=True)])
        if outcome is None:
            return True
        if outcome == "moved":
            return False
        run_id = change.after.run_id
        if outcome.startswith("claimed:"):
            raise Conflict(_busy(run_id, outcome.removeprefix("claimed:")))
        raise Conflict(f"input {outcome} is being deleted; upload it again to use it")

    @contextlib.asynccontextmanager
    async def claimed(
        self, run_id: str, action: RunAction, *, check: Callable[[Run], None]
    ) -> AsyncIterator[Run]:
        """Hold the run for ``action`` while the block runs; yields the run as it was
        when taken. ``check`` (which raises to refuse) passes on that very record, and
        no other action and no retry gets the run meanwhile: :class:`Conflict` for them
        (and for this one if another holds it), :class:`NotFound` without a run."""
        value = f"{action} {uuid.uuid4().hex}"
        run = await self._take(run_id, value, check)
        renewing = asyncio.create_task(self._keep(run_id, value))
        try:
            yield run
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            try:
                await self._release(keys=[keys.run_claim(run_id)], args=[value])
            except RedisError as error:  # it lapses by itself
                log.warning("claim on run %s not lifted (%s); it lapses", run_id, error)

    async def ask_cancel(self, run_id: str, *, check: Callable[[Run], None]) -> Run:
        """Record that a cancel of the run's current generation was asked for, once;
        the run as it was then. ``check`` (which raises to refuse) passes on that very
        record; :class:`Conflict` when a cancel of it was asked already,
        :class:`NotFound` without a run."""
        for _ in range(ATTEMPTS):
            raw, run = await self._checked(run_id, check)
            reply = await self._ask_cancel(
                keys=[keys.run(run_id), keys.cancel_request(run_id)],
                args=[raw, run.generation, _ms(CANCEL_SECONDS)],
            )
            match _text(reply):
                case "recorded":
                    return run
                case "asked":
                    raise Conflict(f"run {run_id} is being cancelled already")
        raise Conflict(f"run {run_id} keeps changing; try again")

    async def withdraw_cancel(self, run: Run) -> None:
        """Forget that a cancel of ``run`` (its generation) was asked for: it could not
        be sent, so it may be asked again."""
        await self._release(keys=[keys.cancel_request(run.run_id)], args=[run.generation])

    async def _checked(self, run_id: str, check: Callable[[Run], None]) -> tuple[bytes, Run]:
        raw = await self.get_raw(run_id)
        if raw is None:
            raise NotFound(f"no run {run_id}")
        run = _decoder.decode(raw)
        check(run)
        return raw, run

    async def _take(self, run_id: str, value: str, check: Callable[[Run], None]) -> Run:
        for _ in range(ATTEMPTS):
            raw, run = await self._checked(run_id, check)
            reply = await self._claim(
                keys=[keys.run(run_id), keys.run_claim(run_id)],
                args=[raw, value, _ms(CLAIM_SECONDS)],
            )
            outcome = _text(reply[0])
            if outcome == "claimed":
                return run
            if outcome == "held":
                raise Conflict(_busy(run_id, _text(reply[1])))
        raise Conflict(f"run {run_id} keeps changing; try again")

    async def _keep(self, run_id: str, value: str) -> None:
        """Renew the claim ``value`` on the run until cancelled."""
        while True:
            await asyncio.sleep(CLAIM_SECONDS / 3)
            try:
                kept = await self._renew(
                    keys=[keys.run_claim(run_id)], args=[value, _ms(CLAIM_SECONDS)]
                )
            except RedisError as error:
                log.warning("claim on run %s not renewed (%s)", run_id, error)
                continue
            if not kept:
                log.warning("claim on run %s lapsed before its action ended", run_id)
                return

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
            # A run submitted again under the same id starts at generation 0 again.
            pipe.delete(keys.cancel_request(run.run_id))
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
        keys.run_claim(after.run_id),
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
        int(change.exclusive),
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


def _busy(run_id: str, claim: str) -> str:
    """What a request refused by the claim ``claim`` (``<action> <token>``) is told."""
    return f"run {run_id} is being {claim.split()[0]} by another request"


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
