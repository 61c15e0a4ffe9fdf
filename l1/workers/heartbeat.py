"""Worker heartbeats: who is alive and what each one is doing.

Every worker puts a :class:`WorkerBeat` under its own key in the NATS key-value bucket
``L1_WORKERS`` every few seconds. The bucket keeps a value for three beats, so a worker
that dies without a word drops out of :func:`live_workers` within that time; one that
stops cleanly deletes its key at once. Nothing is kept in Redis: a worker has no Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec
import nats.errors
from nats.js.api import KeyValueConfig
from nats.js.errors import BadRequestError, BucketNotFoundError

from l1.events.transient import TRANSIENT
from l1.runtime import sleep_unless

if TYPE_CHECKING:
    from nats.js import JetStreamContext
    from nats.js.kv import KeyValue

__all__ = [
    "BUCKET",
    "Heartbeat",
    "Rendering",
    "WorkerBeat",
    "key_for",
    "live_workers",
    "open_bucket",
]

log = logging.getLogger(__name__)

BUCKET = "L1_WORKERS"
# A value outlives its worker by this many beats, so one late beat is no death.
BEATS_KEPT = 3

_KEY = re.compile(r"[^A-Za-z0-9_=-]")


class Rendering(msgspec.Struct, kw_only=True):
    """One render a worker holds."""

    run_id: str
    recipe: str
    effect: str
    node_id: str
    since: str


class WorkerBeat(msgspec.Struct, kw_only=True):
    """What a worker says of itself on every beat."""

    worker: str
    host: str
    pid: int
    started_at: str
    beat_at: str
    concurrency: int
    rendering: list[Rendering] = []
    renders_done: int = 0
    renders_failed: int = 0


_decoder = msgspec.json.Decoder(WorkerBeat)
_encoder = msgspec.json.Encoder()


async def open_bucket(js: JetStreamContext, *, every: float, replicas: int = 1) -> KeyValue:
    """The heartbeat bucket, created (values kept :data:`BEATS_KEPT` beats) if missing."""
    try:
        return await js.key_value(BUCKET)
    except BucketNotFoundError:
        pass
    config = KeyValueConfig(bucket=BUCKET, history=1, ttl=every * BEATS_KEPT, replicas=replicas)
    try:
        return await js.create_key_value(config)
    except BadRequestError:  # another process created it meanwhile
        return await js.key_value(BUCKET)


def key_for(worker: str) -> str:
    """``worker``'s key: its name with anything a key may not hold replaced."""
    return _KEY.sub("_", worker)


class Heartbeat:
    """Puts ``beat()`` into the bucket every ``every`` seconds until stopped, then
    deletes it."""

    def __init__(
        self,
        js: JetStreamContext,
        *,
        worker: str,
        beat: Callable[[], WorkerBeat],
        every: float,
        replicas: int = 1,
    ) -> None:
        self._js = js
        self._key = key_for(worker)
        self._beat = beat
        self._every = every
        self._replicas = replicas

    async def run(self, stop: asyncio.Event) -> None:
        """Beat until ``stop`` is set; a NATS outage only skips beats."""
        bucket: KeyValue | None = None
        while not stop.is_set():
            try:
                if bucket is None:
                    bucket = await open_bucket(self._js, every=self._every, replicas=self._replicas)
                await bucket.put(self._key, _encoder.encode(self._beat()))
            except (*TRANSIENT, nats.errors.Error, OSError) as error:
                log.warning("heartbeat skipped: %s", error)
            await sleep_unless(stop, self._every)
        if bucket is not None:
            # Gone at once rather than when the value expires; a failure here leaves
            # the expiry to do it.
            with contextlib.suppress(*TRANSIENT, nats.errors.Error, OSError, TimeoutError):
                await asyncio.wait_for(bucket.delete(self._key), timeout=2)


async def live_workers(js: JetStreamContext) -> list[WorkerBeat]:
    """Every worker whose last beat has not expired, by name."""
    try:
        bucket = await js.key_value(BUCKET)
    except BucketNotFoundError:
        return []
    watcher = await bucket.watchall(ignore_deletes=True)
    beats: list[WorkerBeat] = []
    try:
        while (entry := await watcher.updates(timeout=5)) is not None:
            if entry.value:
                with contextlib.suppress(msgspec.DecodeError):
                    beats.append(_decoder.decode(entry.value))
    finally:
        await watcher.stop()
    return sorted(beats, key=lambda beat: beat.worker)
