"""The deletion rules, run discard and publishing, against a real L2 stand-in."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable

import httpx
import msgspec
import pytest

from l1.settings import Settings
from tests.harness import Harness, wait_for
from tests.l2_server import FakeL2


@pytest.fixture
async def l1(settings: Settings, l2: FakeL2) -> AsyncIterator[Harness]:
    with_l2 = msgspec.structs.replace(settings, l2_url=l2.url, l2_timeout=1.0)
    async with Harness(with_l2).running() as harness:
        yield harness


async def upload(l1: Harness, data: bytes | None = None) -> str:
    data = data if data is not None else os.urandom(64)
    response = await l1.http.post("/cache", content=data)
    assert response.status_code in (200, 201), response.text
    assert response.json()["content_hash"] == hashlib.sha3_256(data).hexdigest()
    return str(response.json()["content_hash"])


async def completed_run(l1: Harness, recipe: str, inputs: list[str]) -> dict:
    response = await l1.http.post("/runs", json={"recipe": recipe, "inputs": inputs})
    assert response.status_code in (200, 202), response.text
    run = await l1.finished_run(response.json()["run_id"])
    assert run["status"] == "completed", run
    return run


async def test_orphan_is_deleted_with_its_index_and_an_event(l1: Harness) -> None:
    item = await upload(l1)
    await wait_for(lambda: _listed(l1, item))
    response = await l1.http.delete(f"/cache/{item}")
    assert response.status_code == 204, response.text
    assert (await l1.http.get(f"/cache/{item}")).status_code == 404
    await wait_for(lambda: _not_listed(l1, item))


async def test_input_and_output_of_a_run_are_refused(l1: Harness) -> None:
    item = await upload(l1)
    run = await completed_run(l1, "dog", [item])
    refused = await l1.http.delete(f"/cache/{item}")
    assert refused.status_code == 409
    assert f"input of run {run['run_id']}" in refused.json()["detail"]
    refused = await l1.http.delete(f"/cache/{run['output_hash']}")
    assert refused.status_code == 409
    assert f"output of run {run['run_id']}" in refused.json()["detail"]
    meta = (await l1.http.get(f"/cache/{item}/meta")).json()
    assert meta["used_by"] == [run["run_id"]]
    assert meta["deletable"] is False
    assert meta["published"] == "unpublished"


async def test_published_item_is_refused(l1: Harness, l2: FakeL2) -> None:
    item = await upload(l1)
    l2.published.add(item)
    refused = await l1.http.delete(f"/cache/{item}")
    assert refused.status_code == 409
    assert "published to L2" in refused.json()["detail"]
    assert (await l1.http.get(f"/cache/{item}")).status_code == 200


@pytest.mark.parametrize("mode", ["down", "slow", "error", "nonsense"])
async def test_no_deletion_when_l2_cannot_say(l1: Harness, l2: FakeL2, mode: str) -> None:
    item = await upload(l1)
    if mode == "down":
        await l2.stop()
    else:
        l2.mode, l2.delay = mode, 3.0  # type: ignore[assignment]
    refused = await l1.http.delete(f"/cache/{item}")
    assert refused.status_code == 503
    assert "L2" in refused.json()["detail"]
    assert (await l1.http.get(f"/cache/{item}")).status_code == 200
    meta = (await l1.http.get(f"/cache/{item}/meta")).json()
    assert meta["published"] == "unknown" and meta["deletable"] is False


async def test_standalone_server_deletes_orphans(settings: Settings) -> None:
    async with Harness(settings).running() as l1:
        assert "stand-alone" in (await l1.http.get("/")).json()["l2"]
        item = await upload(l1)
        assert (await l1.http.delete(f"/cache/{item}")).status_code == 204


async def test_unknown_and_malformed_items(l1: Harness) -> None:
    assert (await l1.http.delete(f"/cache/{'a' * 64}")).status_code == 404
    assert (await l1.http.delete("/cache/not-a-hash")).status_code == 400


async def test_named_assets_are_kept(l1: Harness) -> None:
    cat = next(a for a in (await l1.http.get("/assets")).json()["items"] if a["name"] == "cat")
    refused = await l1.http.delete(f"/cache/{cat['content_hash']}")
    assert refused.status_code == 409
    assert "named asset 'cat'" in refused.json()["detail"]


async def test_discard_deletes_what_it_leaves_orphaned(l1: Harness) -> None:
    item = await upload(l1)
    run = await completed_run(l1, "identity", [item])
    report = (await l1.http.delete(f"/runs/{run['run_id']}")).json()
    assert report["deleted"] == [item]
    assert (await l1.http.get(f"/runs/{run['run_id']}")).status_code == 404
    assert (await l1.http.get(f"/cache/{item}")).status_code == 404


async def test_discard_keeps_items_shared_with_another_run(l1: Harness) -> None:
    item = await upload(l1)
    first = await completed_run(l1, "identity", [item])
    second = await completed_run(l1, "dog", [item])
    report = (await l1.http.delete(f"/runs/{first['run_id']}")).json()
    assert report["deleted"] == []
    assert any(f"run {second['run_id']}" in r for k in report["kept"] for r in k["reasons"])
    assert (await l1.http.get(f"/cache/{item}")).status_code == 200
    assert (await l1.http.get(f"/runs/{second['run_id']}")).json()["status"] == "completed"


async def test_discard_of_an_unfinished_run_needs_cancel(l1: Harness) -> None:
    await l1.worker.stop()
    item = await upload(l1)
    run = (await l1.http.post("/runs", json={"recipe": "identity", "inputs": [item]})).json()
    refused = await l1.http.delete(f"/runs/{run['run_id']}")
    assert refused.status_code == 409
    assert "cancel" in refused.json()["detail"]
    report = await l1.http.delete(f"/runs/{run['run_id']}", params={"cancel": "true"})
    assert report.status_code == 200, report.text
    assert report.json()["deleted"] == [item]
    l1.worker.start()  # the queued request must not resurrect the run
    run_after = await l1.http.get(f"/runs/{run['run_id']}", params={"wait": 2})
    assert run_after.status_code == 404


async def test_publish_round_trip_protects_the_run(l1: Harness, l2: FakeL2) -> None:
    item = await upload(l1)
    run = await completed_run(l1, "dog", [item])
    response = await l1.http.post(f"/runs/{run['run_id']}/publish")
    assert response.status_code == 200, response.text
    assert [c["run_id"] for c in l2.callbacks] == [run["run_id"]]
    assert l2.callbacks[0]["provenance"]["output"]["content_hash"] == run["output_hash"]
    shown = (await l1.http.get(f"/runs/{run['run_id']}")).json()
    assert set(shown["published"]) == {item, run["output_hash"]}
    refused = await l1.http.delete(f"/runs/{run['run_id']}")
    assert refused.status_code == 409 and "published" in refused.json()["detail"]
    # Protected even when L2 later forgets or goes away: the mark is L1's own.
    await l2.stop()
    refused = await l1.http.delete(f"/cache/{item}")
    assert refused.status_code == 409


async def test_only_completed_runs_are_published(l1: Harness) -> None:
    await l1.worker.stop()
    item = await upload(l1)
    run = (await l1.http.post("/runs", json={"recipe": "identity", "inputs": [item]})).json()
    refused = await l1.http.post(f"/runs/{run['run_id']}/publish")
    assert refused.status_code == 409


async def test_gc_lists_then_deletes_only_the_deletable(l1: Harness) -> None:
    orphan = await upload(l1)
    held = await upload(l1)
    run = await completed_run(l1, "identity", [held])
    dry = (await l1.http.post("/cache/gc", params={"dry_run": "true"})).json()
    assert orphan in dry["deletable"] and held not in dry["deletable"]
    reasons = {h["content_hash"]: h["reasons"] for h in dry["held"]}
    assert any(run["run_id"] in r for r in reasons[held])
    assert (await l1.http.get(f"/cache/{orphan}")).status_code == 200
    done = (await l1.http.post("/cache/gc")).json()
    assert orphan in done["deleted"]
    assert (await l1.http.get(f"/cache/{orphan}")).status_code == 404
    assert (await l1.http.get(f"/cache/{held}")).status_code == 200


async def test_delete_racing_a_run_never_loses_a_completed_runs_items(
    settings: Settings,
) -> None:
    """A delete and a run using the same item at the same moment: whatever wins, no
    completed run ever lacks its input or output."""
    async with Harness(settings).running() as l1:
        outcomes = await _race(l1, rounds=60)
    print("race outcomes (delete, submit):", sorted(outcomes))
    assert len(outcomes) > 1, "the race never went both ways; it proves nothing"


async def _race(l1: Harness, *, rounds: int) -> set[tuple[int, int]]:
    """Race a delete and a submit of one item, ``rounds`` times at least and until both
    have won (at most 8 times as many rounds): who wins hangs on how the two requests'
    steps interleave, which the machine's load shifts, so the second to leave is held
    back by a few more turns of the event loop each round to sweep the interleavings."""
    outcomes: set[tuple[int, int]] = set()
    for round_ in range(rounds * 8):
        if round_ >= rounds and len(outcomes) > 1:
            break
        item = await upload(l1)
        delete = l1.http.delete(f"/cache/{item}")
        submit = l1.http.post("/runs", json={"recipe": "identity", "inputs": [item]})
        later = round_ // 2 % 24  # turns of the loop the second request waits
        if round_ % 2:  # alternate which request leaves first
            submitted, deleted = await asyncio.gather(submit, _after(later, delete))
        else:
            deleted, submitted = await asyncio.gather(delete, _after(later, submit))
        outcomes.add((deleted.status_code, submitted.status_code))
        assert not (deleted.status_code == 204 and submitted.status_code in (200, 202)) or (
            (await l1.finished_run(submitted.json()["run_id"]))["status"] != "completed"
        )
        if submitted.status_code in (200, 202):
            run = await l1.finished_run(submitted.json()["run_id"])
            if run["status"] == "completed":
                assert (await l1.http.get(f"/cache/{item}")).status_code == 200
                assert deleted.status_code in (409, 404)
    return outcomes


async def _after(turns: int, request: Awaitable[httpx.Response]) -> httpx.Response:
    for _ in range(turns):
        await asyncio.sleep(0)  # one turn of the event loop: an offset, not a wait
    return await request


async def _listed(l1: Harness, item: str) -> bool:
    items = (await l1.http.get("/cache", params={"limit": 1000})).json()["items"]
    return any(i["content_hash"] == item for i in items)


async def _not_listed(l1: Harness, item: str) -> bool:
    return not await _listed(l1, item)
