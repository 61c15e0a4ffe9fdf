"""A fleet of hosts that share no disk, over a three-server NATS cluster: items move
between hosts through the blob tier, and losing a NATS server loses nothing."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from l1.identifiers import sha3_hex
from tests.effect_fixtures import slow_output, stamp_output
from tests.fleet import Cluster, host
from tests.harness import EventTap, wait_for
from tests.processes import Deployment


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    running = Cluster(tmp_path / "servers")
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def hosts(tmp_path: Path, cluster: Cluster) -> AsyncIterator[tuple[Deployment, Deployment]]:
    """Hosts A and B; their logs are printed when the test ends (shown on failure)."""
    a, b = host(tmp_path, cluster, 0), host(tmp_path, cluster, 1)
    try:
        yield a, b
    finally:
        await asyncio.gather(a.close(), b.close())
        print(a.logs(), b.logs(), sep="\n")


def local_copies(deployment: Deployment) -> set[str]:
    """The content hashes a host's own cache directory holds."""
    objects = deployment.root / "data" / "cache" / "objects"
    return {entry.name for entry in objects.glob("*/*") if entry.is_file()}


def unique(label: str) -> bytes:
    """Input bytes no other run has used."""
    return f"{label} {os.urandom(8).hex()}".encode()


async def test_a_worker_on_one_host_renders_an_upload_to_another_which_serves_the_output(
    hosts: tuple[Deployment, Deployment],
) -> None:
    a, b = hosts
    await a.start_api(timeout=60)  # host A has no worker: B renders everything
    b.start_worker()
    data = unique("uploaded to A")
    item = await a.upload(data)
    assert item not in local_copies(b)

    run = await a.finished((await a.submit("slow", [item]))["run_id"], timeout=60)

    assert run["status"] == "completed", run
    output = run["output_hash"]
    assert output == sha3_hex(slow_output(data))
    assert {item, output} <= local_copies(b)  # fetched the input, rendered the output
    assert output not in local_copies(a)
    served = await a.http.get(f"/cache/{output}")
    assert served.status_code == 200
    assert served.content == slow_output(data)
    assert served.headers["etag"] == f'"{output}"'
    assert output in local_copies(a)
    ranged = await a.http.get(f"/cache/{output}", headers={"Range": "bytes=0-4"})
    assert (ranged.status_code, ranged.content) == (206, data[:5])


async def test_a_damaged_local_copy_is_fetched_again_not_served(
    hosts: tuple[Deployment, Deployment],
) -> None:
    a, b = hosts
    await asyncio.gather(a.start_api(timeout=60), b.start_api(timeout=60))
    data = unique("stored through B")
    item = await b.upload(data)
    assert (await a.http.get(f"/cache/{item}")).content == data  # A has a copy now
    copy = a.root / "data" / "cache" / "objects" / item[:2] / item
    copy.chmod(0o644)
    copy.write_bytes(data.upper())  # same size, different bytes

    served = await a.http.get(f"/cache/{item}")

    assert (served.status_code, served.content) == (200, data)
    assert (a.root / "data" / "cache" / "damaged" / item).read_bytes() == data.upper()


async def test_an_item_deleted_through_one_host_is_gone_from_every_host(
    hosts: tuple[Deployment, Deployment],
) -> None:
    a, b = hosts
    await asyncio.gather(a.start_api(timeout=60), b.start_api(timeout=60))
    item = await a.upload(unique("deleted through B"))
    assert (await b.http.get(f"/cache/{item}")).status_code == 200
    assert item in local_copies(a) & local_copies(b)

    deleted = await b.http.delete(f"/cache/{item}")

    assert deleted.status_code == 204, deleted.text
    for deployment in (a, b):
        assert (await deployment.http.get(f"/cache/{item}")).status_code == 404

    async def copies_gone() -> bool:
        return item not in local_copies(a) | local_copies(b)

    await wait_for(copies_gone)


RUNS = 500


async def test_every_run_completes_once_while_a_nats_server_is_killed_and_restarted(
    hosts: tuple[Deployment, Deployment], cluster: Cluster
) -> None:
    a, b = hosts
    await asyncio.gather(a.start_api(timeout=60), b.start_api(timeout=60))
    a.start_worker(concurrency=4)
    b.start_worker(concurrency=4)
    inputs = {sha3_hex(data): data for data in (unique("fleet") for _ in range(RUNS))}
    apis = [a, b]

    async def submit(number: int, data: bytes) -> str:
        api = apis[number % 2].http
        item = await _until_accepted(api, "/cache", content=data)
        body = {"recipe": "stamp", "inputs": [item.json()["content_hash"]]}
        return str((await _until_accepted(api, "/runs", json=body)).json()["run_id"])

    first = [submit(n, data) for n, data in enumerate(list(inputs.values())[: RUNS // 2])]
    run_ids = list(await asyncio.gather(*first))
    await asyncio.to_thread(cluster.nodes[0].kill)  # a's first server, mid-flight
    rest = [submit(n, data) for n, data in enumerate(list(inputs.values())[RUNS // 2 :])]
    run_ids += await asyncio.gather(*rest)
    await asyncio.to_thread(cluster.nodes[0].start)

    runs = await asyncio.gather(*(a.finished(run_id, timeout=120) for run_id in run_ids))
    failed = [run for run in runs if run["status"] != "completed"]
    assert not failed, failed[:3]
    for run in runs:
        data = inputs[run["inputs"][0]["content_hash"]]
        assert run["output_hash"] == sha3_hex(stamp_output(data))

    async with EventTap(cluster.url(1), "l1.runs.*.completed") as tap:
        completed = Counter(event["run_id"] for event in await tap.settled(timeout=60))
    assert completed == dict.fromkeys(run_ids, 1)

    for run in runs[:: RUNS // 25]:  # any host serves any output, byte for byte
        output = run["output_hash"]
        bodies = [(await _until_ok(api.http, "GET", f"/cache/{output}")).content for api in apis]
        assert [sha3_hex(body) for body in bodies] == [output, output]


async def _until_accepted(api: httpx.AsyncClient, path: str, **request: object) -> httpx.Response:
    """POST until the API accepts."""
    return await _until_ok(api, "POST", path, **request)


async def _until_ok(
    api: httpx.AsyncClient, method: str, path: str, **request: object
) -> httpx.Response:
    """Ask until the API answers; a 503 (NATS failing over) is asked again, as clients
    do, and anything else but success fails the test."""

    async def answered() -> httpx.Response | None:
        try:
            response = await api.request(method, path, **request)  # type: ignore[arg-type]
        except httpx.TransportError:
            return None
        if response.status_code == 503:
            return None
        assert response.status_code in (200, 201, 202), response.text
        return response

    return await wait_for(answered, timeout=60, interval=0.2)
