"""Lifecycle events on JetStream, and projections that tolerate repeats and disorder."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import PubAck

from l1.events.publisher import Publisher
from l1.events.schemas import Event, RunCompleted, RunStarted, RunSubmitted
from l1.events.streams import EVENTS_STREAM, RUN_PROJECTOR
from l1.identifiers import sha3_hex
from l1.schemas import Provenance, Run
from l1.timestamps import utc_now
from tests.conftest import Servers
from tests.harness import EventTap, Harness, submit, upload, wait_for


@pytest.fixture
async def nc(servers: Servers) -> AsyncIterator[NATS]:
    """A NATS connection of the test's own."""
    assert servers.nats_url
    connection = await nats.connect(servers.nats_url)
    yield connection
    await connection.close()


async def _projected(js: JetStreamContext, ack: PubAck) -> None:
    """Wait until the run projector has acknowledged the message ``ack`` confirmed."""

    async def done() -> bool:
        info = await js.consumer_info(EVENTS_STREAM, RUN_PROJECTOR)
        return info.ack_floor.stream_seq >= ack.seq and info.num_ack_pending == 0

    await wait_for(done)


async def _publish(nc: NATS, event: Event) -> None:
    """Publish ``event`` as L1 does, then wait until the run projector applied it."""
    ack = await Publisher(nc).event(event)
    assert not ack.duplicate
    await _projected(nc.jetstream(), ack)


async def test_run_events_in_order_on_their_subjects(l1: Harness, servers: Servers) -> None:
    assert servers.nats_url
    run = await submit(l1.http, "dog", ["cat"])
    run_id = run["run_id"]
    async with EventTap(servers.nats_url, f"l1.runs.{run_id}.>") as tap:
        events = await tap.until(lambda evs: any(e["event"] == "completed" for e in evs))
        subjects = [msg.subject for msg in tap.messages]

    assert subjects == [f"l1.runs.{run_id}.{e['event']}" for e in events]
    # The dog only passes a file along: no "started" of its own, its "completed" says
    # who started it and when. Progress reports may come between; nothing else may.
    lifecycle = [e for e in events if e["event"] != "progress"]
    assert [e["event"] for e in lifecycle] == ["submitted", "completed"]
    assert lifecycle[1]["worker"] and lifecycle[1]["attempt"] == 1
    assert lifecycle[0]["at"] <= lifecycle[1]["started_at"] <= lifecycle[1]["at"]
    for event in events:
        assert event["run_id"] == run_id
        assert event["event_id"]
        assert event["at"].endswith("Z")
    assert len({e["event_id"] for e in events}) == len(events)
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    assert lifecycle[0]["run"]["run_id"] == run_id
    finished = await l1.finished_run(run_id)
    assert lifecycle[1]["output_hash"] == finished["output_hash"]
    assert lifecycle[1]["provenance"] == finished["provenance"]
    assert finished["started_at"] == lifecycle[1]["started_at"]
    headers = [msg.headers or {} for msg in tap.messages]
    assert [h.get("Nats-Msg-Id") for h in headers] == [e["event_id"] for e in events]


async def test_upload_announces_stored_item(l1: Harness, servers: Servers) -> None:
    assert servers.nats_url
    data = b"an item to announce " + uuid.uuid4().bytes
    content_hash = await upload(l1.http, data)
    async with EventTap(servers.nats_url, f"l1.cache.{content_hash}.>") as tap:
        events = await tap.until(bool)
        subject = tap.messages[0].subject
    assert subject == f"l1.cache.{content_hash}.stored"
    event = events[0]
    assert event["event"] == "stored"
    assert event["content_hash"] == content_hash == sha3_hex(data)
    assert event["size"] == len(data)
    assert event["event_id"]
    assert event["at"].endswith("Z")


async def _completed_run(l1: Harness) -> dict[str, Any]:
    """A run of ``dog`` over ``cat`` once it has completed."""
    run = await l1.finished_run((await submit(l1.http, "dog", ["cat"]))["run_id"])
    assert run["status"] == "completed", run
    return run


async def _current(l1: Harness, run_id: str) -> dict[str, Any]:
    response = await l1.http.get(f"/runs/{run_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_late_duplicate_started_leaves_completed_run_alone(l1: Harness, nc: NATS) -> None:
    before = await _completed_run(l1)
    late = RunStarted(
        event_id=f"{before['run_id']}.started.late",
        at=utc_now(),
        run_id=before["run_id"],
        worker="a-worker-that-lost-the-race",
        attempt=1,
    )
    await _publish(nc, late)
    assert await _current(l1, before["run_id"]) == before


async def test_late_started_of_a_later_attempt_keeps_completion(l1: Harness, nc: NATS) -> None:
    before = await _completed_run(l1)
    late = RunStarted(
        event_id=f"{before['run_id']}.started.redelivered",
        at=utc_now(),
        run_id=before["run_id"],
        worker="redelivered",
        attempt=2,
    )
    await _publish(nc, late)
    after = await _current(l1, before["run_id"])
    for field in ("status", "started_at", "completed_at", "output_hash", "provenance"):
        assert after[field] == before[field], field


async def test_repeated_submitted_and_completed_change_nothing(l1: Harness, nc: NATS) -> None:
    before = await _completed_run(l1)
    run = msgspec.convert({**before, "status": "pending"}, Run)
    await _publish(
        nc,
        RunSubmitted(
            event_id=f"{run.run_id}.submitted.again", at=utc_now(), run_id=run.run_id, run=run
        ),
    )
    other = msgspec.convert(before["provenance"], Provenance)
    other = msgspec.structs.replace(other, task_id=uuid.uuid4().hex, rendered_by="@someone@else")
    await _publish(
        nc,
        RunCompleted(
            event_id=f"{run.run_id}.completed.again",
            at=utc_now(),
            run_id=run.run_id,
            output_hash=before["output_hash"],
            provenance=other,
        ),
    )
    assert await _current(l1, run.run_id) == before


async def test_started_after_completed_does_not_reopen_run(l1: Harness, nc: NATS) -> None:
    template = await _completed_run(l1)
    run_id = sha3_hex(uuid.uuid4().bytes)
    provenance = msgspec.convert({**template["provenance"], "run_id": run_id}, Provenance)
    run = msgspec.convert(
        {
            **template,
            "run_id": run_id,
            "status": "pending",
            "created_at": utc_now(),
            "started_at": None,
            "completed_at": None,
            "output_hash": None,
            "provenance": None,
        },
        Run,
    )
    await _publish(nc, RunSubmitted(event_id=f"{run_id}.s", at=utc_now(), run_id=run_id, run=run))
    assert (await _current(l1, run_id))["status"] == "pending"
    completed_at = utc_now()
    await _publish(
        nc,
        RunCompleted(
            event_id=f"{run_id}.c",
            at=completed_at,
            run_id=run_id,
            output_hash=template["output_hash"],
            provenance=provenance,
        ),
    )
    await _publish(
        nc, RunStarted(event_id=f"{run_id}.st", at=utc_now(), run_id=run_id, worker="slow")
    )
    after = await _current(l1, run_id)
    assert after["status"] == "completed"
    assert after["completed_at"] == completed_at
    assert after["started_at"] <= completed_at
    assert after["output_hash"] == template["output_hash"]
