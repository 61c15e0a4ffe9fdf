"""The blob tier and the local copies in front of it, against a real JetStream.

Two "hosts" here are two local stores in different directories sharing one bucket, as
two machines of a fleet would; nothing passes between them but through NATS.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from l1.cache.blobs import BUCKET, BlobCorrupt, BlobTier
from l1.cache.items import Items
from l1.cache.janitor import SETTLE, Janitor
from l1.cache.store import ContentStore
from l1.errors import NotFound
from l1.events import subjects
from l1.identifiers import sha3_hex
from l1.schemas import StoredItem
from tests.conftest import Servers
from tests.harness import wait_for


@pytest.fixture
async def nc(servers: Servers) -> AsyncIterator[NATS]:
    client = await nats.connect(servers.nats_url)
    with contextlib.suppress(NotFoundError):
        await client.jetstream().delete_object_store(BUCKET)
    yield client
    await client.close()


@pytest.fixture
async def tier(nc: NATS) -> BlobTier:
    opened = BlobTier(nc.jetstream())
    await opened.open()
    return opened


@pytest.fixture
def host_a(tmp_path: Path, tier: BlobTier) -> Items:
    return Items(ContentStore(tmp_path / "a"), tier)


@pytest.fixture
def host_b(tmp_path: Path, tier: BlobTier) -> Items:
    return Items(ContentStore(tmp_path / "b"), tier)


async def stored(items: Items, data: bytes, tmp_path: Path) -> StoredItem:
    """``data`` stored on the host of ``items`` and shared through the tier."""
    source = tmp_path / f"source-{os.urandom(4).hex()}"
    source.write_bytes(data)
    item = await asyncio.to_thread(items.store.put_file, source)
    await items.share(item)
    return item


def rot(path: Path, *, keep_times: bool) -> None:
    """Change a byte of ``path`` in place; with ``keep_times``, as rot would (size and
    times unchanged), otherwise as a program writing to it would."""
    before = path.stat()
    path.chmod(0o644)
    with path.open("r+b") as file:
        first = file.read(1)
        file.seek(0)
        file.write(bytes([first[0] ^ 0xFF]))
    path.chmod(0o444)
    if keep_times:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


async def test_an_item_shared_by_one_host_is_fetched_intact_by_another(
    host_a: Items, host_b: Items, tmp_path: Path
) -> None:
    data = os.urandom(3 << 20)
    item = await stored(host_a, data, tmp_path)
    assert await host_b.contains(item.content_hash)
    assert not host_b.store.exists(item.content_hash)
    described = await host_b.describe(item.content_hash)
    assert (described.size, described.content_type) == (item.size, item.content_type)

    # Many at once want it: all get the one intact copy.
    paths = await asyncio.gather(*(host_b.local_path(item.content_hash) for _ in range(5)))
    assert len(set(paths)) == 1
    assert paths[0].read_bytes() == data
    assert [p.name for p in host_b.store.scratch.iterdir() if p.name != ".lock"] == []


async def test_a_large_fetch_streams_to_disk_in_flat_memory(
    host_a: Items, host_b: Items, tmp_path: Path
) -> None:
    size = 64 << 20
    item = await stored(host_a, os.urandom(size), tmp_path)
    tracemalloc.start()
    try:
        path = await host_b.local_path(item.content_hash)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert path.stat().st_size == size
    assert peak < size // 4, f"fetching {size >> 20} MiB took {peak >> 20} MiB at its peak"


async def test_a_tier_copy_that_is_not_what_its_name_says_is_refused(
    tier: BlobTier, host_b: Items
) -> None:
    claimed = sha3_hex(b"the real thing")
    await tier.bucket.put(claimed, b"a forgery of it")

    with pytest.raises(BlobCorrupt):
        await host_b.local_path(claimed)
    assert not host_b.store.exists(claimed)
    assert [p.name for p in host_b.store.scratch.iterdir() if p.name != ".lock"] == []


async def test_a_damaged_local_copy_never_enters_the_tier(
    host_a: Items, tier: BlobTier, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    source.write_bytes(b"to be damaged before it is shared")
    item = await asyncio.to_thread(host_a.store.put_file, source)
    rot(host_a.store.path_for(item.content_hash), keep_times=True)

    with pytest.raises(BlobCorrupt):
        await host_a.share(item)
    assert not await tier.has(item.content_hash)


async def test_a_copy_changed_on_disk_is_set_aside_and_fetched_again(
    host_a: Items, tmp_path: Path
) -> None:
    data = b"a copy someone writes over"
    item = await stored(host_a, data, tmp_path)
    path = host_a.store.path_for(item.content_hash)
    rot(path, keep_times=False)

    assert (await host_a.local_path(item.content_hash)).read_bytes() == data
    damaged = host_a.store.root / "damaged" / item.content_hash
    assert damaged.read_bytes() != data


async def test_a_copy_without_the_tier_is_never_served_once_damaged(tmp_path: Path) -> None:
    alone = Items(ContentStore(tmp_path / "alone"))
    source = tmp_path / "source"
    source.write_bytes(b"the only copy")
    item = await asyncio.to_thread(alone.store.put_file, source)
    rot(alone.store.path_for(item.content_hash), keep_times=False)

    with pytest.raises(NotFound, match="damaged"):
        await alone.local_path(item.content_hash)
    assert (alone.store.root / "damaged" / item.content_hash).exists()


async def test_rot_in_place_is_caught_by_a_render_check_and_by_the_scrubber(
    host_a: Items, nc: NATS, tmp_path: Path
) -> None:
    data = os.urandom(1 << 20)
    item = await stored(host_a, data, tmp_path)
    path = host_a.store.path_for(item.content_hash)

    rot(path, keep_times=True)
    assert (await host_a.local_path(item.content_hash, verify=True)).read_bytes() == data

    rot(path, keep_times=True)
    report = await Janitor(host_a, nc, max_bytes=0).scrubber.once()
    assert report.damaged == [item.content_hash]
    # Set aside, and fetched again from the tier at once.
    assert host_a.store.was_damaged(item.content_hash)
    assert host_a.store.verify(item.content_hash)
    assert (await host_a.local_path(item.content_hash)).read_bytes() == data


def last_used(items: Items, content_hash: str, seconds_ago: float) -> None:
    """Make the local copy of ``content_hash`` read as last used ``seconds_ago``."""
    path = items.store.path_for(content_hash)
    used = time.time_ns() - int(seconds_ago * 1e9)
    os.utime(path, ns=(used, path.stat().st_mtime_ns))


async def test_least_recently_used_copies_are_evicted_past_the_limit_but_never_one_in_use(
    host_a: Items, nc: NATS, tmp_path: Path
) -> None:
    size = 100_000
    items = [await stored(host_a, os.urandom(size), tmp_path) for _ in range(5)]
    hashes = [item.content_hash for item in items]
    for age, content_hash in zip((5000, 4000, 3000, 2000, 1000), hashes, strict=True):
        last_used(host_a, content_hash, age)
    janitor = Janitor(host_a, nc, max_bytes=2 * size)

    with host_a.using([hashes[0]]):  # the oldest, but a render holds it
        done = await janitor.sweep()

    assert done is not None and "3 evicted" in done
    kept = {h for h in hashes if host_a.store.exists(h)}
    assert kept == {hashes[0], hashes[4]}
    for content_hash in hashes:  # evicted here, kept by the tier
        assert await host_a.contains(content_hash)
    assert (await host_a.local_path(hashes[1])).stat().st_size == size


async def test_copies_of_deleted_items_are_dropped_when_announced_or_found_missed(
    host_a: Items, nc: NATS, tmp_path: Path
) -> None:
    announced = await stored(host_a, b"deleted while this host listened", tmp_path)
    missed = await stored(host_a, b"deleted while this host was away", tmp_path)
    janitor = Janitor(host_a, nc, max_bytes=0)
    stop = asyncio.Event()
    running = asyncio.create_task(janitor.run(stop))
    try:
        for item in (announced, missed):
            await host_a.tier.bucket.delete(item.content_hash)  # type: ignore[union-attr]

        async def dropped() -> bool:
            # Announced again until heard: the janitor may not be listening yet.
            await nc.publish(subjects.cache_event(announced.content_hash, "deleted"), b"{}")
            await nc.flush()
            return not host_a.store.exists(announced.content_hash)

        await wait_for(dropped)
    finally:
        stop.set()
        await running

    assert host_a.store.exists(missed.content_hash)  # not announced: still here
    path = host_a.store.path_for(missed.content_hash)
    written = time.time_ns() - int((SETTLE + 60) * 1e9)
    os.utime(path, ns=(written, written))
    done = await janitor.sweep()
    assert done is not None and "1 deleted item(s) dropped" in done
    assert not host_a.store.exists(missed.content_hash)
