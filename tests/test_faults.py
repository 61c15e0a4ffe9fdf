"""Faults with real processes and real signals: workers killed mid-render, NATS and Redis
restarted under a running deployment, poison requests, cancellation and shutdown.

Each test has its own ``nats-server`` and Redis-compatible server (so that it can stop
and restart them) and runs ``python -m l1 api`` and ``python -m l1 worker`` as child
processes with short delivery timings (see :data:`tests.processes.FAST`).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from l1.identifiers import sha3_hex
from tests.effect_fixtures import slow_output
from tests.harness import EventTap, wait_for
from tests.l2_server import FakeL2
from tests.processes import Deployment, OwnServers, render_queue_empty

# The worker's grace period for in-flight renders on SIGTERM, and how long past it
# a worker may take to exit.
GRACE = 10.0
MARGIN = 4.0

Events = list[dict[str, Any]]


@pytest.fixture
async def redis(own: OwnServers) -> AsyncIterator[Redis]:
    """A client of the test's Redis, in L1's database, that reconnects after a restart."""
    client = Redis.from_url(
        own.redis_url,
        decode_responses=True,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=5),
        retry_on_error=[RedisConnectionError],
    )
    yield client
    await client.aclose()


def named(event: str) -> Callable[[Events], bool]:
    """A condition on tapped events: one called ``event`` has arrived."""
    return lambda events: any(e["event"] == event for e in events)


def of_kind(events: Events, event: str) -> Events:
    """The events called ``event``."""
    return [e for e in events if e["event"] == event]


def unique(label: str) -> bytes:
    """Input bytes no other run has used."""
    return f"{label} {os.urandom(8).hex()}".encode()


def stored_objects(deployment: Deployment) -> set[str]:
    """The content hashes the cache directory holds on disk."""
    objects = deployment.root / "data" / "cache" / "objects"
    return {entry.name for entry in objects.glob("*/*") if entry.is_file()}


async def asset_hashes(deployment: Deployment) -> set[str]:
    """The hashes of the named assets the API stores at start."""
    response = await deployment.http.get("/assets")
    return {asset["content_hash"] for asset in response.json()["items"]}


async def stream_events(nats_url: str, subject: str) -> Events:
    """Every event the events stream holds on ``subject``, in order."""
    async with EventTap(nats_url, subject) as tap:
        return await tap.settled()


# --- a worker killed mid-render ------------------------------------------------------


async def test_worker_killed_mid_render_is_replaced_by_another(
    deployment: Deployment, own: OwnServers, redis: Redis
) -> None:
    await deployment.start_api()
    first = deployment.start_worker("worker-a")
    data = unique("killed mid-render")
    item = await deployment.upload(data)
    run_id = (await deployment.submit("slow", [item]))["run_id"]

    async with EventTap(own.nats_url, f"l1.runs.{run_id}.>") as tap:
        await tap.until(named("started"))
        assert await first.kill() == -signal.SIGKILL
        second = deployment.start_worker("worker-b")
        run = await deployment.finished(run_id, timeout=40)
        events = await tap.settled()

    assert run["status"] == "completed", run
    output = run["output_hash"]
    assert output == sha3_hex(slow_output(data))
    started = of_kind(events, "started")
    assert [e["attempt"] for e in started] == [1, 2]
    assert started[0]["worker"] != started[1]["worker"]
    assert len(of_kind(events, "completed")) == 1
    assert run["attempts"] == 2
    # Exactly one output in the store besides the input and the named assets.
    assert stored_objects(deployment) - await asset_hashes(deployment) == {item, output}
    stored = await stream_events(own.nats_url, f"l1.cache.{output}.>")
    assert [e["event"] for e in stored] == ["stored"]
    # Exactly one activity, referenced from both of its items.
    assert [key async for key in redis.scan_iter("artdag:activity:*")] == [
        f"artdag:activity:{run_id}"
    ]
    activity = json.loads(await redis.get(f"artdag:activity:{run_id}"))
    assert (activity["inputs"], activity["output"]) == ([item], output)
    assert await redis.zrange("artdag:activities", 0, -1) == [run_id]
    assert await redis.smembers(f"artdag:refs:{item}") == {run_id}
    assert await redis.smembers(f"artdag:refs:{output}") == {run_id}
    assert second.alive


# --- NATS restarted under running and queued runs ------------------------------------


async def test_every_accepted_run_completes_across_a_nats_restart(
    deployment: Deployment, own: OwnServers
) -> None:
    api = await deployment.start_api()
    worker = deployment.start_worker(concurrency=2)
    inputs = {await deployment.upload(data): data for data in (unique("nats") for _ in range(5))}
    accepted = [(await deployment.submit("slow", [item]))["run_id"] for item in inputs]
    during = unique("submitted while NATS is down")
    during_item = await deployment.upload(during)
    async with EventTap(own.nats_url, "l1.runs.*.started") as tap:
        await tap.until(bool)  # some are rendering, the rest are queued

    await asyncio.to_thread(own.nats.stop)
    late = await deployment.http.post("/runs", json={"recipe": "slow", "inputs": [during_item]})
    assert late.status_code in (202, 503), late.text
    if late.status_code == 202:  # accepted, so it must complete too
        accepted.append(late.json()["run_id"])
        inputs[during_item] = during
    await asyncio.to_thread(own.nats.start)

    runs = [await deployment.finished(run_id, timeout=60) for run_id in accepted]
    assert [run["status"] for run in runs] == ["completed"] * len(accepted), runs
    for run in runs:
        item = run["inputs"][0]["content_hash"]
        assert run["output_hash"] == sha3_hex(slow_output(inputs[item]))
        body = await deployment.http.get(f"/cache/{run['output_hash']}")
        assert body.content == slow_output(inputs[item])
    assert api.alive and worker.alive


# --- Redis restarted: state kept, events caught up -----------------------------------


async def test_redis_restart_keeps_state_and_subscribers_catch_up(
    deployment: Deployment, own: OwnServers, redis: Redis
) -> None:
    l2 = FakeL2()
    await l2.start()
    try:
        await _redis_restart(deployment, own, redis, l2)
    finally:
        await l2.stop()


async def _redis_restart(deployment: Deployment, own: OwnServers, redis: Redis, l2: FakeL2) -> None:
    deployment.env["L1_L2_URL"] = l2.url
    await deployment.start_api()
    deployment.start_worker()
    published_item = await deployment.upload(unique("published before the restart"))
    published = await deployment.finished(
        (await deployment.submit("poison", [published_item]))["run_id"]
    )
    assert published["status"] == "completed", published
    answer = await deployment.http.post(f"/runs/{published['run_id']}/publish")
    assert answer.status_code == 200, answer.text
    before = await deployment.run(published["run_id"])
    activity = await redis.get(f"artdag:activity:{published['run_id']}")
    marks = await redis.smembers("artdag:published")
    assert activity is not None and {published_item, published["output_hash"]} <= marks

    data = unique("completed while Redis is down")
    item = await deployment.upload(data)
    run_id = (await deployment.submit("slow", [item]))["run_id"]
    async with EventTap(own.nats_url, f"l1.runs.{run_id}.>") as tap:
        await tap.until(named("started"))
        await asyncio.to_thread(own.redis.stop)  # SIGTERM: it writes its log and exits
        await tap.until(named("completed"), timeout=30)  # published while Redis is down
        down = await deployment.http.get(f"/runs/{run_id}")
        assert down.status_code == 503, down.text
    await asyncio.to_thread(own.redis.start)

    async def readable() -> bool:
        return (await deployment.http.get(f"/runs/{published['run_id']}")).status_code == 200

    await wait_for(readable, timeout=20)
    assert await deployment.run(published["run_id"]) == before
    assert await redis.get(f"artdag:activity:{published['run_id']}") == activity
    assert marks <= await redis.smembers("artdag:published")

    caught_up = await deployment.finished(run_id, timeout=30)
    assert caught_up["status"] == "completed", caught_up
    assert caught_up["output_hash"] == sha3_hex(slow_output(data))
    assert await redis.get(f"artdag:activity:{run_id}") is not None
    assert run_id in await redis.smembers(f"artdag:refs:{caught_up['output_hash']}")


# --- the same run submitted 100 times at once ----------------------------------------


async def test_hundred_identical_submissions_are_one_run_rendered_once(
    deployment: Deployment, own: OwnServers
) -> None:
    await deployment.start_api()
    deployment.start_worker()
    item = await deployment.upload(unique("submitted a hundred times"))
    body = {"recipe": "slow", "inputs": [item]}
    responses = await asyncio.gather(
        *(deployment.http.post("/runs", json=body) for _ in range(100))
    )
    assert {r.status_code for r in responses} <= {200, 202}, {r.status_code for r in responses}
    run_ids = {r.json()["run_id"] for r in responses}
    assert len(run_ids) == 1
    (run_id,) = run_ids
    assert (await deployment.finished(run_id))["status"] == "completed"

    events = await stream_events(own.nats_url, f"l1.runs.{run_id}.>")
    assert [(e["event"], e.get("attempt")) for e in of_kind(events, "started")] == [("started", 1)]
    assert len(of_kind(events, "submitted")) == 1
    assert len(of_kind(events, "completed")) == 1


# --- a poison request ----------------------------------------------------------------


async def test_poison_request_fails_after_max_deliveries_and_is_dead_lettered(
    deployment: Deployment, own: OwnServers
) -> None:
    await deployment.start_api()
    worker = deployment.start_worker(concurrency=2)
    before = await deployment.submit("poison", [await deployment.upload(unique("good before"))])
    poisoned = await deployment.upload(b"poison " + os.urandom(8))
    run_id = (await deployment.submit("poison", [poisoned]))["run_id"]
    after = await deployment.submit("poison", [await deployment.upload(unique("good after"))])

    failed = await deployment.finished(run_id)
    assert failed["status"] == "failed", failed
    assert "poisoned input" in failed["error"] and "3 attempts" in failed["error"]
    assert failed["attempts"] == 3
    started = of_kind(await stream_events(own.nats_url, f"l1.runs.{run_id}.>"), "started")
    assert [e["attempt"] for e in started] == [1, 2, 3]
    for good in (before, after):
        assert (await deployment.finished(good["run_id"]))["status"] == "completed"

    letters = [
        d for d in (await deployment.http.get("/dead")).json()["items"] if d["run_id"] == run_id
    ]
    assert len(letters) == 1 and "poisoned input" in letters[0]["reason"]
    listed = await asyncio.to_thread(deployment.cli, "dead")
    assert listed.returncode == 0, listed.stderr
    assert run_id in listed.stdout and "poisoned input" in listed.stdout
    assert worker.alive

    retried = await deployment.http.post(f"/runs/{run_id}/retry")
    assert retried.status_code == 202, retried.text
    assert retried.json()["generation"] == 1
    again = await deployment.finished(run_id)
    assert (again["status"], again["generation"], again["attempts"]) == ("failed", 1, 3)
    assert "poisoned input" in again["error"]
    letters = [
        d for d in (await deployment.http.get("/dead")).json()["items"] if d["run_id"] == run_id
    ]
    assert len(letters) == 2
    assert worker.alive


async def test_transient_failure_succeeds_when_retried(
    deployment: Deployment, tmp_path: Path
) -> None:
    await deployment.start_api()
    deployment.start_worker()
    marker = tmp_path / "still-failing"
    marker.touch()
    data = b"flaky:" + str(marker).encode()
    item = await deployment.upload(data)
    run_id = (await deployment.submit("flaky", [item]))["run_id"]
    failed = await deployment.finished(run_id)
    assert (failed["status"], failed["attempts"]) == ("failed", 3), failed
    assert "transient failure" in failed["error"]

    marker.unlink()
    assert (await deployment.http.post(f"/runs/{run_id}/retry")).status_code == 202
    again = await deployment.finished(run_id)
    assert (again["status"], again["generation"]) == ("completed", 1), again
    assert again["output_hash"] == item  # a copy of the input
    assert again["error"] is None


# --- the API while a dependency is down ----------------------------------------------


async def _answer(deployment: Deployment, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """The response to one request, which must come within five seconds."""
    return await asyncio.wait_for(deployment.http.request(method, path, **kwargs), timeout=5)


async def _until_status(
    deployment: Deployment, method: str, path: str, statuses: set[int], **kwargs: Any
) -> httpx.Response:
    """Repeat a request until it answers one of ``statuses``; the last response."""

    async def check() -> httpx.Response | None:
        response = await _answer(deployment, method, path, **kwargs)
        return response if response.status_code in statuses else None

    return await wait_for(check, timeout=30, interval=0.2)


async def test_api_answers_503_while_nats_is_down_and_recovers(
    deployment: Deployment, own: OwnServers
) -> None:
    await deployment.start_api()
    deployment.start_worker()
    item = await deployment.upload(unique("submitted during the NATS outage"))
    body = {"recipe": "poison", "inputs": [item]}

    await asyncio.to_thread(own.nats.stop)
    refused = await _until_status(deployment, "POST", "/runs", {503}, json=body)
    assert "NATS" in refused.json()["detail"]
    health = await _until_status(deployment, "GET", "/health", {503})
    assert health.json() == {"nats": "down", "redis": "ok"}
    assert (await _answer(deployment, "GET", "/health/live")).status_code == 200

    await asyncio.to_thread(own.nats.start)
    await _until_status(deployment, "GET", "/health", {200})
    accepted = await _until_status(deployment, "POST", "/runs", {200, 202}, json=body)
    run = await deployment.finished(accepted.json()["run_id"], timeout=30)
    assert run["status"] == "completed", run


async def test_api_answers_503_while_redis_is_down_and_recovers(
    deployment: Deployment, own: OwnServers
) -> None:
    await deployment.start_api()
    deployment.start_worker()
    item = await deployment.upload(unique("read during the Redis outage"))
    run = await deployment.finished((await deployment.submit("poison", [item]))["run_id"])

    await asyncio.to_thread(own.redis.stop)
    refused = await _until_status(deployment, "GET", f"/runs/{run['run_id']}", {503})
    assert "Redis" in refused.json()["detail"]
    health = await _until_status(deployment, "GET", "/health", {503})
    assert health.json() == {"nats": "ok", "redis": "down"}
    assert (await _answer(deployment, "GET", "/health/live")).status_code == 200

    await asyncio.to_thread(own.redis.start)
    await _until_status(deployment, "GET", "/health", {200})
    back = await _until_status(deployment, "GET", f"/runs/{run['run_id']}", {200})
    assert back.json()["status"] == "completed"


# --- graceful shutdown ---------------------------------------------------------------


async def test_sigterm_during_a_render_finishes_it_within_the_grace_period(
    deployment: Deployment, own: OwnServers
) -> None:
    await deployment.start_api()
    worker = deployment.start_worker("worker-a")
    data = unique("rendering at SIGTERM")
    item = await deployment.upload(data)
    run_id = (await deployment.submit("slow", [item]))["run_id"]
    async with EventTap(own.nats_url, f"l1.runs.{run_id}.>") as tap:
        await tap.until(named("started"))
        worker.send(signal.SIGTERM)
        assert await worker.exited(timeout=GRACE + MARGIN) == 0, "no clean exit in time"
        deployment.start_worker("worker-b")  # takes the run if it was handed back
        run = await deployment.finished(run_id)
    assert run["status"] == "completed", run
    assert run["output_hash"] == sha3_hex(slow_output(data))


async def test_sigterm_during_a_long_render_exits_within_the_grace_period(
    deployment: Deployment, own: OwnServers, tmp_path: Path
) -> None:
    marker = tmp_path / "keep-rendering"
    marker.touch()
    await deployment.start_api()
    worker = deployment.start_worker("worker-a")
    item = await deployment.upload(b"hang:" + str(marker).encode())
    run_id = (await deployment.submit("hang", [item]))["run_id"]
    async with EventTap(own.nats_url, f"l1.runs.{run_id}.>") as tap:
        await tap.until(named("started"))
        worker.send(signal.SIGTERM)
        status = await worker.exited(timeout=GRACE + MARGIN)
        marker.unlink()  # the render may end now, whatever happened
        deployment.start_worker("worker-b")
        run = await deployment.finished(run_id)
        events = await tap.settled()
    assert status is not None, f"the worker did not exit within {GRACE + MARGIN}s of SIGTERM"
    assert run["status"] == "completed", run
    assert [e["attempt"] for e in of_kind(events, "started")] == [1, 2]


# --- reconciliation ------------------------------------------------------------------


async def test_run_whose_request_was_lost_is_republished_and_completes(
    deployment: Deployment, own: OwnServers
) -> None:
    await deployment.start_api()  # no worker yet: the request stays queued
    item = await deployment.upload(unique("lost request"))
    run_id = (await deployment.submit("poison", [item]))["run_id"]
    nc = await nats.connect(own.nats_url)
    try:
        js = nc.jetstream()
        await js.purge_stream("L1_RENDER")
        assert await render_queue_empty(own.nats_url)

        async def requeued() -> bool:
            return not await render_queue_empty(own.nats_url)

        await wait_for(requeued, timeout=10, interval=0.2)
    finally:
        await nc.close()
    deployment.start_worker()
    run = await deployment.finished(run_id, timeout=30)
    assert run["status"] == "completed", run
    assert run["output_hash"] == item


# --- cancellation --------------------------------------------------------------------


async def test_cancelled_pending_run_is_never_rendered(
    deployment: Deployment, own: OwnServers
) -> None:
    await deployment.start_api()  # no worker: the run stays pending
    item = await deployment.upload(unique("cancelled while pending"))
    run_id = (await deployment.submit("slow", [item]))["run_id"]
    response = await deployment.http.post(f"/runs/{run_id}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"

    worker = deployment.start_worker()

    async def drained() -> bool:
        return await render_queue_empty(own.nats_url)

    await wait_for(drained, timeout=30, interval=0.2)  # the worker has seen the request
    events = await stream_events(own.nats_url, f"l1.runs.{run_id}.>")
    assert of_kind(events, "started") == []
    assert (await deployment.run(run_id))["status"] == "cancelled"
    assert worker.alive


async def test_cancelled_running_render_stops_and_the_worker_takes_the_next(
    deployment: Deployment, own: OwnServers
) -> None:
    await deployment.start_api()
    # One render slot: the next run can only start once the cancelled one let go of it,
    # and it renders only after the cancelled render's thread has ended.
    worker = deployment.start_worker(concurrency=1)
    item = await deployment.upload(unique("cancelled while rendering"))
    run_id = (await deployment.submit("slow", [item]))["run_id"]
    async with EventTap(own.nats_url, f"l1.runs.{run_id}.>") as tap:
        await tap.until(named("started"))
        response = await deployment.http.post(f"/runs/{run_id}/cancel")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "cancelled"

        following = await deployment.submit("slow", [await deployment.upload(unique("next"))])
        assert (await deployment.finished(following["run_id"]))["status"] == "completed"
        events = await tap.settled()
    assert of_kind(events, "completed") == []
    assert (await deployment.run(run_id))["status"] == "cancelled"
    assert worker.alive
    assert await render_queue_empty(own.nats_url)
