"""``/runs``: submitting, reading, de-duplicating and listing runs."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import Any

import httpx

from tests.conftest import Servers
from tests.harness import EventTap, Harness, asset_hashes, submit, upload

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _timestamps_in_order(run: dict[str, Any]) -> bool:
    """created_at ≤ started_at ≤ completed_at (same-format UTC strings sort as times)."""
    return run["created_at"] <= run["started_at"] <= run["completed_at"]


async def test_seed_flow_dog_over_cat(l1: Harness) -> None:
    assets = await asset_hashes(l1.http)
    response = await l1.http.post(
        "/runs", json={"recipe": "dog", "inputs": ["cat"], "output_name": "my-output"}
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] in {"pending", "running"}
    assert HEX64.fullmatch(accepted["run_id"])

    run = await l1.finished_run(accepted["run_id"])
    assert run["status"] == "completed", run
    assert run["output_hash"] == assets["dog"]
    assert run["output_name"] == "my-output"
    assert run["inputs"] == [{"name": "cat", "content_hash": assets["cat"]}]
    assert _timestamps_in_order(run), run

    provenance = run["provenance"]
    assert provenance["run_id"] == run["run_id"]
    assert provenance["task_id"]
    assert provenance["rendered_at"]
    assert provenance["rendered_by"] == "@tester@l1.test"
    assert provenance["output"] == {"name": "my-output", "content_hash": assets["dog"]}
    assert provenance["inputs"] == [{"name": "cat", "content_hash": assets["cat"]}]
    assert [e["name"] for e in provenance["effects"]] == ["dog"]
    assert HEX64.fullmatch(provenance["effects"][0]["content_hash"])
    for part in ("software", "hardware"):
        assert provenance["infrastructure"][part]["name"]
        assert HEX64.fullmatch(provenance["infrastructure"][part]["content_hash"])

    stored = await l1.http.get(f"/cache/{assets['dog']}/provenance")
    assert stored.status_code == 200, stored.text
    assert stored.json() == provenance


async def test_identity_output_is_the_input(l1: Harness) -> None:
    data = b"identity keeps every byte\x00\xff"
    content_hash = await upload(l1.http, data)
    run = await l1.finished_run((await submit(l1.http, "identity", [content_hash]))["run_id"])
    assert run["status"] == "completed", run
    assert run["output_hash"] == content_hash
    assert (await l1.http.get(f"/cache/{content_hash}")).content == data


async def test_repeat_submission_is_the_same_run(l1: Harness) -> None:
    first = await submit(l1.http, "dog", ["cat"])
    finished = await l1.finished_run(first["run_id"])
    assert finished["status"] == "completed"

    again = await l1.http.post("/runs", json={"recipe": "dog", "inputs": ["cat"]})
    assert again.status_code == 200, again.text
    assert again.json()["run_id"] == first["run_id"]
    assert again.json()["status"] == "completed"
    assert again.json()["output_hash"] == finished["output_hash"]


async def test_concurrent_identical_submissions_render_once(l1: Harness, servers: Servers) -> None:
    content_hash = await upload(l1.http, b"twenty clients, one run")
    body = {"recipe": "identity", "inputs": [content_hash]}
    responses = await asyncio.gather(*(l1.http.post("/runs", json=body) for _ in range(20)))
    assert {r.status_code for r in responses} <= {200, 202}, [r.text for r in responses]
    run_ids = {r.json()["run_id"] for r in responses}
    assert len(run_ids) == 1
    run_id = run_ids.pop()
    assert (await l1.finished_run(run_id))["status"] == "completed"

    assert servers.nats_url
    async with EventTap(servers.nats_url, f"l1.runs.{run_id}.>") as tap:
        events = await tap.settled()
    kinds = [e["event"] for e in events]
    assert kinds.count("completed") == 1, kinds
    assert kinds.count("submitted") == 1, kinds
    # identity only passes a file along: its one "completed" says who started it.
    assert kinds.count("started") == 0, kinds


async def _all_pages(l1: Harness, limit: int, **params: str) -> list[list[dict[str, Any]]]:
    """Every page of ``GET /runs``, following ``next_cursor``."""
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        query: dict[str, Any] = {"limit": limit, **params}
        if cursor:
            query["cursor"] = cursor
        response = await l1.http.get("/runs", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return pages
        assert len(pages) < 50, "pagination does not end"


async def test_list_runs_newest_first_and_paginated(l1: Harness) -> None:
    hashes = [await upload(l1.http, f"input number {i}".encode()) for i in range(7)]
    submitted = [(await submit(l1.http, "identity", [h]))["run_id"] for h in hashes]
    for run_id in submitted:
        assert (await l1.finished_run(run_id))["status"] == "completed"

    pages = await _all_pages(l1, 3)
    assert [len(page) for page in pages] == [3, 3, 1]
    listed = [run for page in pages for run in page]
    assert [run["run_id"] for run in listed] == list(reversed(submitted))
    created = [run["created_at"] for run in listed]
    assert created == sorted(created, reverse=True)

    completed = [run for page in await _all_pages(l1, 1000, status="completed") for run in page]
    assert {run["run_id"] for run in completed} == set(submitted)


async def test_status_filter_separates_pending_from_completed(l1: Harness) -> None:
    done = await submit(l1.http, "dog", ["cat"])
    assert (await l1.finished_run(done["run_id"]))["status"] == "completed"
    await l1.worker.stop()
    waiting = await submit(l1.http, "identity", ["cat"])

    pending = (await l1.http.get("/runs", params={"status": "pending"})).json()["items"]
    completed = (await l1.http.get("/runs", params={"status": "completed"})).json()["items"]
    assert [r["run_id"] for r in pending] == [waiting["run_id"]]
    assert [r["run_id"] for r in completed] == [done["run_id"]]

    l1.worker.start()
    assert (await l1.finished_run(waiting["run_id"]))["status"] == "completed"
    pending = (await l1.http.get("/runs", params={"status": "pending"})).json()["items"]
    assert pending == []


BAD_LIST_QUERIES: list[dict[str, str]] = [
    {"limit": "0"},
    {"limit": "1001"},
    {"limit": "-1"},
    {"limit": "many"},
    {"cursor": "garbage"},
    {"cursor": "!!!"},
    {"cursor": "x" * 600},
    {"status": "bogus"},
]


async def test_list_runs_rejects_bad_parameters(l1: Harness) -> None:
    await submit(l1.http, "dog", ["cat"])
    for query in BAD_LIST_QUERIES:
        response = await l1.http.get("/runs", params=query)
        assert response.status_code == 400, (query, response.text)
        assert response.json()["detail"], query


async def test_burst_of_reads_is_served_not_refused(l1: Harness) -> None:
    unknown = "0" * 64
    limits = httpx.Limits(max_connections=250, max_keepalive_connections=250)
    async with httpx.AsyncClient(base_url=l1.base_url, timeout=60, limits=limits) as http:
        responses = await asyncio.gather(*(http.get(f"/runs/{unknown}") for _ in range(250)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {404: 250}, statuses
