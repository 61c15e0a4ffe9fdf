"""Runs and items named by a unique prefix (as git takes a short commit id) or, for an
item, by an asset name; and the one list shape every list endpoint answers."""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable

import nats
from redis.asyncio import Redis

from l1 import keys
from l1.assets import asset_path
from l1.events.streams import DEAD_STREAM
from l1.identifiers import run_id_for
from tests.harness import Harness, asset_hashes, submit, upload, wait_for


def sha3(data: bytes) -> str:
    """The content hash of ``data``."""
    return hashlib.sha3_256(data).hexdigest()


def colliding(key: Callable[[bytes], str], width: int = 4) -> tuple[bytes, bytes, str]:
    """Two different payloads whose ``key`` starts with the same ``width`` characters,
    and that prefix (a few hundred hashes on average, computed here)."""
    salt = os.urandom(8)
    seen: dict[str, bytes] = {}
    for n in itertools.count():
        data = salt + n.to_bytes(4, "big")
        prefix = key(data)[:width]
        if prefix in seen:
            return seen[prefix], data, prefix
        seen[prefix] = data
    raise AssertionError("unreachable")


async def test_a_run_by_a_prefix_of_its_id(l1: Harness) -> None:
    content_hash = await upload(l1.http, b"a run found by its first characters")
    run_id = (await submit(l1.http, "identity", [content_hash]))["run_id"]
    assert (await l1.finished_run(run_id))["status"] == "completed"

    for prefix in (run_id[:4], run_id[:12], run_id[:63]):
        read = await l1.http.get(f"/runs/{prefix}")
        assert read.status_code == 200, (prefix, read.text)
        assert read.json()["run_id"] == run_id
    refused = await l1.http.post(f"/runs/{run_id[:8]}/retry")
    assert refused.status_code == 409, refused.text
    assert run_id in refused.json()["detail"]

    discarded = await l1.http.delete(f"/runs/{run_id[:10]}")
    assert discarded.status_code == 200, discarded.text
    assert discarded.json()["run_id"] == run_id
    gone = await l1.http.get(f"/runs/{run_id[:8]}")
    assert gone.status_code == 404, gone.text
    assert run_id[:8] in gone.json()["detail"]


async def test_prefix_shorter_than_four_is_400(l1: Harness) -> None:
    for path in ("/runs/abc", "/cache/abc", "/runs/abc/cancel"):
        method = "POST" if path.endswith("cancel") else "GET"
        response = await l1.http.request(method, path)
        assert response.status_code == 400, (path, response.text)
        assert "at least 4" in response.json()["detail"]


async def test_an_ambiguous_run_prefix_is_409_saying_how_many(l1: Harness) -> None:
    effect = (await l1.http.get("/effects/identity")).json()

    def run_id(data: bytes) -> str:
        return run_id_for("identity", effect["content_hash"], [sha3(data)])

    first, second, prefix = colliding(run_id)
    for data in (first, second):
        submitted = await submit(l1.http, "identity", [await upload(l1.http, data)])
        assert submitted["run_id"] == run_id(data)

    response = await l1.http.get(f"/runs/{prefix}")
    assert response.status_code == 409, response.text
    detail = response.json()["detail"]
    assert "ambiguous" in detail and "2 runs" in detail
    for data in (first, second):
        assert run_id(data)[:12] in detail
    longer = run_id(first)[: len(prefix) + 8]
    assert (await l1.http.get(f"/runs/{longer}")).json()["run_id"] == run_id(first)


async def test_an_item_by_prefix_or_asset_name(l1: Harness) -> None:
    data = b"an item found by its first characters"
    content_hash = await upload(l1.http, data)

    async def indexed() -> bool:
        return (await l1.http.get(f"/cache/{content_hash[:6]}")).status_code == 200

    await wait_for(indexed)  # the index follows the store through events
    assert (await l1.http.get(f"/cache/{content_hash[:6]}")).content == data
    head = await l1.http.head(f"/cache/{content_hash[:9]}")
    assert head.headers["etag"].strip('"') == content_hash
    meta = await l1.http.get(f"/cache/{content_hash[:7]}/meta")
    assert meta.json()["content_hash"] == content_hash

    cat = await l1.http.get("/cache/cat")
    assert cat.status_code == 200
    assert cat.content == asset_path("cat").read_bytes()
    assert cat.headers["etag"].strip('"') == (await asset_hashes(l1.http))["cat"]
    assert (await l1.http.delete("/cache/cat")).status_code == 409  # assets are held

    deleted = await l1.http.delete(f"/cache/{content_hash[:8]}")
    assert deleted.status_code == 204, deleted.text
    assert (await l1.http.get(f"/cache/{content_hash}")).status_code == 404

    async def forgotten() -> bool:
        return (await l1.http.get(f"/cache/{content_hash[:6]}")).status_code == 404

    await wait_for(forgotten)


async def test_an_ambiguous_item_prefix_is_409(l1: Harness) -> None:
    first, second, prefix = colliding(sha3)
    for data in (first, second):
        await upload(l1.http, data)

    async def ambiguous() -> dict | None:
        response = await l1.http.get(f"/cache/{prefix}/meta")
        return response.json() if response.status_code == 409 else None

    detail = (await wait_for(ambiguous))["detail"]
    assert "2 cached items" in detail


async def test_run_inputs_by_prefix(l1: Harness) -> None:
    data = b"an input given by a prefix"
    content_hash = await upload(l1.http, data)

    async def indexed() -> bool:
        return (await l1.http.head(f"/cache/{content_hash[:10]}")).status_code == 200

    await wait_for(indexed)
    run = await submit(l1.http, "identity", [content_hash[:10]])
    assert run["inputs"] == [{"name": content_hash, "content_hash": content_hash}]
    named = await l1.http.post(
        "/runs", json={"recipe": "identity", "inputs": {"input": content_hash[:10]}}
    )
    assert named.status_code in (200, 202), named.text
    assert named.json()["run_id"] == run["run_id"]
    unknown = await l1.http.post("/runs", json={"recipe": "identity", "inputs": ["0000abcd"]})
    assert unknown.status_code == 422, unknown.text
    assert "0000abcd" in unknown.json()["detail"]


async def test_runs_and_items_recorded_before_the_prefix_indexes(l1: Harness) -> None:
    content_hash = await upload(l1.http, b"recorded by an earlier version")
    run_id = (await submit(l1.http, "identity", [content_hash]))["run_id"]
    await l1.finished_run(run_id)
    redis = Redis.from_url(l1.settings.redis_url or "")
    try:
        await redis.delete(keys.RUN_IDS, keys.CACHE_HASHES)
    finally:
        await redis.aclose()
    assert (await l1.http.get(f"/runs/{run_id[:8]}")).status_code == 404

    await l1.api.stop()
    await l1.start_api()  # the API indexes them at start
    assert (await l1.http.get(f"/runs/{run_id[:8]}")).json()["run_id"] == run_id
    assert (await l1.http.get(f"/cache/{content_hash[:8]}/meta")).status_code == 200


async def test_every_list_has_one_shape(l1: Harness) -> None:
    for path in ("/runs", "/cache", "/recipes", "/assets", "/effects", "/dead"):
        response = await l1.http.get(path)
        assert response.status_code == 200, (path, response.text)
        body = response.json()
        assert set(body) == {"items", "next_cursor"}, (path, body)
        assert isinstance(body["items"], list)
    assets = (await l1.http.get("/assets")).json()["items"]
    assert {asset["name"] for asset in assets} == {"cat", "dog", "clip"}
    effects = (await l1.http.get("/effects")).json()["items"]
    assert "blur" in {effect["name"] for effect in effects}
    assert (await l1.http.get("/effects/blur")).json()["name"] == "blur"
    assert (await l1.http.get("/effects/no-such-effect")).status_code == 404


async def test_dead_letters_come_in_pages(l1: Harness) -> None:
    run_ids = [sha3(bytes([n])) for n in range(3)]
    nc = await nats.connect(l1.settings.nats_url or "")
    try:
        js = nc.jetstream()
        for run_id in run_ids:
            subject = f"l1.dead.identity.{run_id}"
            await js.publish(subject, b"{}", stream=DEAD_STREAM, headers={"L1-Reason": "test"})
    finally:
        await nc.close()

    first = (await l1.http.get("/dead", params={"limit": 2})).json()
    assert [d["run_id"] for d in first["items"]] == run_ids[::-1][:2]
    assert first["next_cursor"]
    rest = (await l1.http.get("/dead", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert [d["run_id"] for d in rest["items"]] == run_ids[:1]
    assert rest["next_cursor"] is None
