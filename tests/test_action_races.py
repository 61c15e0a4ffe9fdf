"""One answer per action on a run: many retries, discards, cancels and publishes of one
run sent at once give one success and clear refusals, and an action that lost never
does part of its work anyway (a retried render of a discarded run, a second request to
L2)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from l1.settings import Settings
from tests.harness import EventTap, Harness, submit, upload, wait_for
from tests.l2_server import FakeL2
from tests.processes import render_queue_empty, with_test_effects

# Requests of one kind sent at once at one run.
AT_ONCE = 20


@pytest.fixture
async def l1(settings: Settings, l2: FakeL2) -> AsyncIterator[Harness]:
    """A deployment with the test-only effects, one attempt per render, and an L2."""
    tuned = msgspec.structs.replace(with_test_effects(settings, max_deliver=1), l2_url=l2.url)
    async with Harness(tuned).running() as harness:
        yield harness


async def failed_run(l1: Harness, marker: Path) -> str:
    """A run of ``flaky`` that failed; it renders once ``marker`` is removed."""
    marker.touch()
    item = await upload(l1.http, b"flaky:" + str(marker).encode())
    run_id = str((await submit(l1.http, "flaky", [item]))["run_id"])
    assert (await l1.finished_run(run_id))["status"] == "failed"
    return run_id


def statuses(answers: list[httpx.Response]) -> Counter[int]:
    return Counter(answer.status_code for answer in answers)


def refusals(answers: list[httpx.Response]) -> list[str]:
    """The details of the 409 answers (each a JSON error)."""
    return [a.json()["detail"] for a in answers if a.status_code == 409]


async def retried_dead_letters(l1: Harness) -> list[dict[str, Any]]:
    """Dead letters of renders sent by a retry (generation 1 or later)."""
    response = await l1.http.get("/dead", params={"limit": 1000})
    assert response.status_code == 200, response.text
    letters = response.json()["items"]
    return [letter for letter in letters if letter["request"]["generation"] > 0]


async def test_retries_of_a_failed_run_at_once_send_it_once(l1: Harness, tmp_path: Path) -> None:
    marker = tmp_path / "failing"
    run_id = await failed_run(l1, marker)
    marker.unlink()
    async with EventTap(l1.settings.nats_url or "", f"l1.runs.{run_id}.submitted") as tap:
        answers = await asyncio.gather(
            *(l1.http.post(f"/runs/{run_id}/retry") for _ in range(AT_ONCE))
        )
        assert statuses(answers) == {202: 1, 409: AT_ONCE - 1}, statuses(answers)
        assert all("retried" in r or "pending" in r for r in refusals(answers))
        winner = next(a.json() for a in answers if a.status_code == 202)
        assert winner["generation"] == 1
        again = await l1.finished_run(run_id)
        assert (again["status"], again["generation"]) == ("completed", 1), again
        submitted = await tap.settled()
    assert [event["generation"] for event in submitted] == [0, 1]


async def test_retries_racing_discards_never_both_succeed(l1: Harness, tmp_path: Path) -> None:
    markers = [tmp_path / f"failing-{n}" for n in range(6)]
    run_ids = [await failed_run(l1, marker) for marker in markers]
    # No worker while they race: a retried run stays pending, so only a discard that
    # won could succeed after a retry (which it may not), never a re-failed one.
    await l1.worker.stop()
    for marker in markers:
        marker.unlink()
    retried: list[str] = []
    discarded: list[str] = []
    for round_number, run_id in enumerate(run_ids):
        # Alternating requests, the first a retry in one round and a discard in the next.
        kinds = ["retry", "discard"] if round_number % 2 else ["discard", "retry"]
        order = kinds * (AT_ONCE // 2)
        answers = await asyncio.gather(
            *(
                l1.http.post(f"/runs/{run_id}/retry")
                if kind == "retry"
                else l1.http.delete(f"/runs/{run_id}")
                for kind in order
            )
        )
        retries = [a for kind, a in zip(order, answers, strict=True) if kind == "retry"]
        discards = [a for kind, a in zip(order, answers, strict=True) if kind == "discard"]
        won = statuses(retries)[202] + statuses(discards)[200]
        assert won == 1, (statuses(retries), statuses(discards))
        losers = {a.status_code for a in answers if a.status_code not in (200, 202)}
        assert losers <= {404, 409}, [a.text for a in answers]
        (retried if statuses(retries)[202] else discarded).append(run_id)

    l1.worker.start()
    for run_id in retried:
        run = await l1.finished_run(run_id)
        assert (run["status"], run["generation"]) == ("completed", 1), run

    async def drained() -> bool:
        return await render_queue_empty(l1.settings.nats_url or "")

    await wait_for(drained)
    for run_id in discarded:
        assert (await l1.http.get(f"/runs/{run_id}")).status_code == 404
    assert await retried_dead_letters(l1) == []


async def test_cancels_of_a_queued_run_at_once_cancel_it_once(l1: Harness) -> None:
    await l1.worker.stop()  # the run stays queued
    item = await upload(l1.http, b"cancelled while queued")
    run_id = (await submit(l1.http, "identity", [item]))["run_id"]
    async with EventTap(l1.settings.nats_url or "", f"l1.runs.{run_id}.cancelled") as tap:
        answers = await asyncio.gather(
            *(l1.http.post(f"/runs/{run_id}/cancel") for _ in range(AT_ONCE))
        )
        assert statuses(answers) == {200: 1, 409: AT_ONCE - 1}, statuses(answers)
        assert next(a.json() for a in answers if a.status_code == 200)["status"] == "cancelled"
        assert all("cancel" in r for r in refusals(answers))

        # The cancel is of one generation: once retried, the run can be cancelled again,
        # once.
        assert (await l1.http.post(f"/runs/{run_id}/retry")).status_code == 202
        again = await asyncio.gather(*(l1.http.post(f"/runs/{run_id}/cancel") for _ in range(5)))
        assert statuses(again) == {200: 1, 409: 4}, statuses(again)
        cancelled = await tap.settled()
    assert [event["generation"] for event in cancelled] == [0, 1]


async def test_publishes_at_once_ask_l2_once(l1: Harness, l2: FakeL2) -> None:
    item = await upload(l1.http, b"published once")
    run = await l1.finished_run((await submit(l1.http, "identity", [item]))["run_id"])
    l2.mode, l2.delay = "slow", 1.0  # L2 takes its time, as a real one reading back may
    answers = await asyncio.gather(
        *(l1.http.post(f"/runs/{run['run_id']}/publish") for _ in range(AT_ONCE))
    )
    assert statuses(answers) == {200: 1, 409: AT_ONCE - 1}, statuses(answers)
    assert all("being published" in r for r in refusals(answers))
    assert [c["run_id"] for c in l2.callbacks] == [run["run_id"]]


async def test_a_run_is_not_discarded_while_l2_publishes_it(l1: Harness, l2: FakeL2) -> None:
    item = await upload(l1.http, b"discarded or published")
    run = await l1.finished_run((await submit(l1.http, "identity", [item]))["run_id"])
    run_id = run["run_id"]
    l2.mode, l2.delay = "slow", 1.0
    publishes = [l1.http.post(f"/runs/{run_id}/publish") for _ in range(5)]
    discards = [l1.http.delete(f"/runs/{run_id}") for _ in range(5)]
    answers = await asyncio.gather(*publishes, *discards)
    published, discarded = statuses(answers[:5])[200], statuses(answers[5:])[200]
    assert published + discarded == 1, [a.text for a in answers]
    assert {a.status_code for a in answers} <= {200, 404, 409}, [a.text for a in answers]
    if published:
        shown = (await l1.http.get(f"/runs/{run_id}")).json()
        assert set(shown["published"]) == {item, run["output_hash"]}
        assert [c["run_id"] for c in l2.callbacks] == [run_id]
    else:
        assert l2.callbacks == []
        assert (await l1.http.get(f"/runs/{run_id}")).status_code == 404
