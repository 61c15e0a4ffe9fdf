"""Runs survive restarts of the API, the worker and the subscribers."""

from __future__ import annotations

from typing import Any

from tests.conftest import Servers
from tests.harness import EventTap, Harness, submit, upload


async def _read(l1: Harness, run_id: str) -> dict[str, Any]:
    """The run as ``GET /runs/{run_id}`` shows it now."""
    response = await l1.http.get(f"/runs/{run_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _submit_three(l1: Harness) -> list[dict[str, Any]]:
    """Three different runs, as the API accepted them."""
    first = await upload(l1.http, b"restart input one")
    second = await upload(l1.http, b"restart input two")
    return [
        await submit(l1.http, "dog", ["cat"]),
        await submit(l1.http, "identity", [first]),
        await submit(l1.http, "identity", [second]),
    ]


async def test_pending_runs_complete_after_everything_restarts(l1: Harness) -> None:
    await l1.worker.stop()
    accepted = await _submit_three(l1)
    assert {run["status"] for run in accepted} == {"pending"}
    before = {run["run_id"]: await _read(l1, run["run_id"]) for run in accepted}
    assert {run["status"] for run in before.values()} == {"pending"}

    await l1.api.stop()
    await l1.start_api()
    after_api = {run_id: await _read(l1, run_id) for run_id in before}
    assert after_api == before

    await l1.subscribers.stop()
    l1.subscribers.start()
    l1.worker.start()
    finished = {run_id: await l1.finished_run(run_id) for run_id in before}
    assert {run["status"] for run in finished.values()} == {"completed"}
    for run_id, run in finished.items():
        assert run["created_at"] == before[run_id]["created_at"]
        assert run["inputs"] == before[run_id]["inputs"]
    identity = accepted[1]
    assert finished[identity["run_id"]]["output_hash"] == identity["inputs"][0]["content_hash"]

    await l1.api.stop()
    await l1.start_api()
    assert {run_id: await _read(l1, run_id) for run_id in before} == finished
    listed = (await l1.http.get("/runs", params={"status": "completed"})).json()["items"]
    assert {run["run_id"] for run in listed} == set(before)


async def test_run_completed_while_subscribers_were_down_is_caught_up(
    l1: Harness, servers: Servers
) -> None:
    assert servers.nats_url
    await l1.subscribers.stop()
    run_id = (await submit(l1.http, "dog", ["cat"]))["run_id"]
    async with EventTap(servers.nats_url, f"l1.runs.{run_id}.>") as tap:
        await tap.until(lambda events: any(e["event"] == "completed" for e in events))
    # The worker has finished, but nothing has projected its events yet.
    assert (await _read(l1, run_id))["status"] == "pending"

    l1.subscribers.start()
    run = await l1.finished_run(run_id)
    assert run["status"] == "completed"
    assert run["started_at"] is not None
    assert run["provenance"]["run_id"] == run_id


async def test_runs_submitted_while_worker_down_wait_for_it(l1: Harness) -> None:
    await l1.worker.stop()
    run_id = (await submit(l1.http, "dog", ["cat"]))["run_id"]
    waited = await l1.http.get(f"/runs/{run_id}", params={"wait": 0.5})
    assert waited.status_code == 200
    assert waited.json()["status"] == "pending"

    l1.worker.start()
    assert (await l1.finished_run(run_id))["status"] == "completed"
