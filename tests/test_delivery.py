"""Progress while a render runs, and events of an older generation arriving late."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
from nats.aio.client import Client as NATS
from redis.asyncio import Redis

from l1 import keys
from l1.events.publisher import Publisher
from l1.events.schemas import (
    Event,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunProgress,
    RunStarted,
)
from l1.identifiers import sha3_hex
from l1.schemas import Infrastructure, NamedHash, Provenance
from l1.settings import Settings
from l1.timestamps import utc_now
from tests.conftest import Servers
from tests.effect_fixtures import slow_output
from tests.harness import EventTap, Harness, submit, upload, wait_for
from tests.processes import with_test_effects


@pytest.fixture
async def l1(settings: Settings) -> AsyncIterator[Harness]:
    """A deployment that knows the test-only effects, with short retry timings."""
    async with Harness(with_test_effects(settings, max_deliver=3)).running() as harness:
        yield harness


@pytest.fixture
async def nc(servers: Servers) -> AsyncIterator[NATS]:
    """A NATS connection of the test's own."""
    assert servers.nats_url
    connection = await nats.connect(servers.nats_url)
    yield connection
    await connection.close()


async def read(l1: Harness, run_id: str) -> dict[str, Any]:
    """The run as ``GET /runs/{run_id}`` shows it now."""
    response = await l1.http.get(f"/runs/{run_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def publish_projected(nc: NATS, events: list[Event]) -> None:
    """Publish ``events`` as L1 does, then wait until the run projector has acked them."""
    publisher, js = Publisher(nc), nc.jetstream()
    last = 0
    for event in events:
        ack = await publisher.event(event)
        last = max(last, ack.seq)

    async def applied() -> bool:
        info = await js.consumer_info("L1_EVENTS", "run-projector")
        return info.ack_floor.stream_seq >= last and info.num_ack_pending == 0

    await wait_for(applied)


def stale_events(run: dict[str, Any], label: str) -> list[Event]:
    """One of each event a worker or the API could have sent for generation 0 of ``run``,
    with new event ids (``label`` keeps them apart between calls)."""
    run_id, at = run["run_id"], utc_now()
    output = sha3_hex(f"an output of generation 0 {label}".encode())
    named = NamedHash(name="x", content_hash=output)
    provenance = Provenance(
        task_id=label,
        run_id=run_id,
        rendered_at=at,
        rendered_by="@late@l1.test",
        output=named,
        inputs=[named],
        effects=[named],
        infrastructure=Infrastructure(software=named, hardware=named),
    )
    common: dict[str, Any] = {"at": at, "run_id": run_id, "generation": 0}
    return [
        RunStarted(event_id=f"{label}.started", worker="late", attempt=7, **common),
        RunProgress(event_id=f"{label}.progress", percent=42.0, **common),
        RunCompleted(
            event_id=f"{label}.completed", output_hash=output, provenance=provenance, **common
        ),
        RunFailed(event_id=f"{label}.failed", error="late failure", attempt=7, **common),
        RunCancelled(event_id=f"{label}.cancelled", **common),
    ]


async def test_slow_render_reports_increasing_progress(l1: Harness, servers: Servers) -> None:
    assert servers.nats_url
    data = b"progress " + os.urandom(8)
    item = await upload(l1.http, data)
    run_id = (await submit(l1.http, "slow", [item]))["run_id"]
    async with EventTap(servers.nats_url, f"l1.runs.{run_id}.progress") as tap:

        async def shows_progress() -> dict[str, Any] | None:
            run = await read(l1, run_id)
            running = run["status"] == "running" and run["progress"] is not None
            return run if running and 0 < run["progress"] < 100 else None

        midway = await wait_for(shows_progress, timeout=10, interval=0.05)
        finished = await l1.finished_run(run_id)
        events = await tap.settled()

    assert finished["status"] == "completed", finished
    assert finished["output_hash"] == sha3_hex(slow_output(data))
    percents = [event["percent"] for event in events]
    assert len(percents) >= 2, percents
    assert percents == sorted(set(percents)), "progress must only increase"
    assert all(0 < p <= 100 for p in percents)
    assert {e["run_id"] for e in events} == {run_id}
    assert {e["event"] for e in events} == {"progress"}
    assert midway["progress"] in percents
    assert finished["progress"] == 100


async def test_late_events_of_an_older_generation_leave_a_retried_run_alone(
    l1: Harness, nc: NATS, tmp_path: Path
) -> None:
    marker = tmp_path / "failing"
    marker.touch()
    item = await upload(l1.http, b"flaky:" + str(marker).encode())
    run_id = (await submit(l1.http, "flaky", [item]))["run_id"]
    first = await l1.finished_run(run_id)
    assert (first["status"], first["generation"]) == ("failed", 0), first

    await l1.worker.stop()  # the retried run stays pending while the late events land
    retried = await l1.http.post(f"/runs/{run_id}/retry")
    assert retried.status_code == 202, retried.text
    pending = await read(l1, run_id)
    assert (pending["status"], pending["generation"]) == ("pending", 1)
    await publish_projected(nc, stale_events(pending, "while-pending"))
    assert await read(l1, run_id) == pending

    marker.unlink()
    l1.worker.start()
    completed = await l1.finished_run(run_id)
    assert (completed["status"], completed["generation"]) == ("completed", 1), completed
    assert completed["output_hash"] == item
    await publish_projected(nc, stale_events(completed, "after-completion"))
    assert await read(l1, run_id) == completed


async def test_late_cancel_of_an_older_generation_does_not_stop_the_retry(
    l1: Harness, nc: NATS, tmp_path: Path
) -> None:
    marker = tmp_path / "keep-rendering"
    marker.touch()
    item = await upload(l1.http, b"hang:" + str(marker).encode())
    run_id = (await submit(l1.http, "hang", [item]))["run_id"]
    assert l1.settings.nats_url
    async with EventTap(l1.settings.nats_url, f"l1.runs.{run_id}.>") as tap:
        await tap.until(lambda events: any(e["event"] == "started" for e in events))
        cancelled = await l1.http.post(f"/runs/{run_id}/cancel")
        assert cancelled.json()["status"] == "cancelled"
        cancel_event = next(e for e in tap.events if e["event"] == "cancelled")

        assert (await l1.http.post(f"/runs/{run_id}/retry")).status_code == 202
        await tap.until(
            lambda events: any(e["event"] == "started" and e["generation"] == 1 for e in events)
        )
        # The first generation's cancel arrives again, as a repeated publish would.
        late = msgspec.convert(cancel_event, RunCancelled)
        await Publisher(nc).event(late)
        await nc.flush()
    marker.unlink()
    run = await l1.finished_run(run_id, timeout=8)
    assert (run["status"], run["generation"]) == ("completed", 1), run


async def test_the_api_hears_of_finished_runs_only_while_a_request_waits(
    l1: Harness, servers: Servers
) -> None:
    assert servers.redis_url
    redis = Redis.from_url(servers.redis_url)

    def listening(count: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            [(_, subscribed)] = await redis.pubsub_numsub(keys.RUNS_FINISHED_CHANNEL)
            return bool(subscribed == count)

        return check

    try:
        assert await listening(0)()
        run_id = (await submit(l1.http, "slow", [await upload(l1.http, os.urandom(16))]))["run_id"]
        waiting = asyncio.create_task(l1.http.get(f"/runs/{run_id}", params={"wait": 30}))
        await wait_for(listening(1))
        response = await waiting
        assert response.json()["status"] == "completed", response.text
        await wait_for(listening(0))
    finally:
        await redis.aclose()
