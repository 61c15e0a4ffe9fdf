"""Hostile requests and races, black-box: nothing hangs, nothing answers 5xx, every
action gets one answer, and the cache index agrees with the disk afterwards."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import nats
import pytest

from l1.events.streams import RENDER_STREAM, ensure_streams
from l1.settings import Settings
from tests.harness import EventTap, Harness, upload, wait_for
from tests.processes import Deployment, OwnServers

DEADLINE = 1.0  # the quiet-client deadlines the harness runs with here


@pytest.fixture
async def strict(settings: Settings) -> AsyncIterator[Harness]:
    """A deployment with small limits and short deadlines for quiet clients."""
    small = msgspec.structs.replace(
        settings, max_body_bytes=1 << 20, max_upload_bytes=1 << 20, max_import_bytes=1 << 16
    )
    harness = Harness(small, headers_timeout=DEADLINE, body_idle_timeout=DEADLINE)
    async with harness.running():
        yield harness


@pytest.fixture
async def roomy(settings: Settings) -> AsyncIterator[Harness]:
    """A deployment that takes request bodies of up to 16 MiB."""
    async with Harness(msgspec.structs.replace(settings, max_body_bytes=16 << 20)).running() as h:
        yield h


def raw_exchange(port: int, request: bytes, *, wait: float = 5.0) -> tuple[bytes, float]:
    """Send ``request`` on a fresh connection; what comes back first and after how long
    (empty when the server closed the connection)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(wait)
        started = time.monotonic()
        sock.sendall(request)
        try:
            answer = sock.recv(4096)
        except TimeoutError:
            answer = b"<no answer>"
        return answer, time.monotonic() - started


def chain_recipe(nodes: int) -> bytes:
    lines = ["name: long", "inputs: [{name: picture}]", "nodes:"]
    lines.append("  - {id: n0, type: SOURCE, config: {input: picture}}")
    lines += [
        f"  - {{id: n{i}, type: EFFECT, config: {{effect: invert}}, inputs: [n{i - 1}]}}"
        for i in range(1, nodes)
    ]
    lines.append(f"output: n{nodes - 1}")
    return "\n".join(lines).encode()


# --- one request never stalls the API --------------------------------------------------


async def test_a_huge_recipe_is_refused_quickly_and_the_api_stays_live(roomy: Harness) -> None:
    document = chain_recipe(150_000)  # about 11 MB of YAML
    assert len(document) > 10 << 20
    posting = asyncio.create_task(roomy.http.post("/recipes", content=document))
    deadline = time.monotonic() + 60
    while not posting.done():
        assert time.monotonic() < deadline, "the recipe was never answered"
        started = time.monotonic()
        live = await roomy.http.get("/health/live")
        assert live.status_code == 200
        assert time.monotonic() - started < 1.0, "the API stalled while a recipe was parsed"
        await asyncio.sleep(0.05)
    response = await posting
    assert response.status_code == 400, response.text
    assert "YAML nodes" in response.json()["detail"]


async def test_a_recipe_past_the_body_limit_is_refused_unread(l1: Harness) -> None:
    response = await l1.http.post("/recipes", content=chain_recipe(20_000))
    assert response.status_code == 413


async def test_a_recipe_may_not_take_an_effects_name(l1: Harness) -> None:
    document = b"name: identity\ninputs: [{name: a}]\nnodes:\n  - {id: s, type: SOURCE}\n"
    document += b"  - {id: o, type: EFFECT, config: {effect: invert}, inputs: [s]}\noutput: o\n"
    response = await l1.http.post(
        "/recipes", content=document.replace(b"type: SOURCE", b"type: SOURCE, config: {input: a}")
    )
    assert response.status_code == 409, response.text
    assert "effect" in response.json()["detail"]


# --- body limits before reading --------------------------------------------------------


@pytest.mark.parametrize("path", ["/runs", "/recipes", "/cache"])
async def test_bodies_announced_too_large_are_refused_before_a_byte_is_read(
    strict: Harness, path: str
) -> None:
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {20 << 20}\r\nExpect: 100-continue\r\n\r\n"
    ).encode()
    answer, seconds = await asyncio.to_thread(raw_exchange, strict.settings.port, request)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
    assert b"100 Continue" not in answer
    assert seconds < DEADLINE


async def test_a_streamed_body_past_the_limit_is_cut_off_and_nothing_kept(
    strict: Harness,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield os.urandom(64 << 10)  # 4 MiB in all, against a 1 MiB limit

    response = await strict.http.post("/cache", content=chunks())
    assert response.status_code == 413
    scratch = Path(strict.settings.cache_dir) / "tmp"
    leftovers = [p for p in scratch.rglob("*") if p.is_file() and p.name != ".lock"]
    assert leftovers == []


async def test_imports_past_their_limit_are_refused(strict: Harness) -> None:
    root = strict.settings.import_roots[0]
    big = root / "sparse.bin"
    with big.open("wb") as file:
        file.truncate(1 << 30)  # a gigabyte of holes: no disk used, far past the limit
    response = await strict.http.post("/cache/import", params={"path": str(big)})
    assert response.status_code == 413
    assert "import limit" in response.json()["detail"]


async def test_undecodable_bodies_are_400(l1: Harness) -> None:
    for body in (
        b'{"recipe":"identity","inputs":["cat"],"output_name":"\xff\xfe"}',
        b'{"recipe":"identity","inputs":["cat"],"output_name":"\xed\xa0\x80"}',
        b'{"recipe":"identity","inputs":["cat"],"output_name":"\\ud800"}',
    ):
        response = await l1.http.post(
            "/runs", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, (body, response.text)
        assert response.json()["detail"]


async def test_errors_quote_only_a_little_of_what_they_were_sent(l1: Harness) -> None:
    long_path = "/" + "x" * 5000
    response = await l1.http.post("/cache/import", params={"path": long_path})
    assert 400 <= response.status_code < 500
    assert len(response.json()["detail"]) <= 500


# --- quiet clients -------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"",
        b"GET / HTTP/1.1\r\n",
        b"POST /runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99\r\n\r\n{",
    ],
)
async def test_quiet_clients_are_let_go(strict: Harness, request_bytes: bytes) -> None:
    answer, seconds = await asyncio.to_thread(
        raw_exchange, strict.settings.port, request_bytes, wait=DEADLINE + 5
    )
    assert answer == b"", answer[:80]
    assert seconds < DEADLINE + 3


# --- downloads and the schema ----------------------------------------------------------


async def test_head_gives_a_downloads_headers_without_its_bytes(l1: Harness) -> None:
    data = os.urandom(3000)
    item = await upload(l1.http, data)
    response = await l1.http.head(f"/cache/{item}")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(len(data))
    assert item in response.headers["etag"]
    assert (await l1.http.head(f"/cache/{'0' * 64}")).status_code == 404


async def test_the_schema_describes_every_request_body(l1: Harness) -> None:
    schema = (await l1.http.get("/docs/openapi.json")).json()
    upload_body = schema["paths"]["/cache"]["post"]["requestBody"]["content"]
    assert {"application/octet-stream", "multipart/form-data"} <= set(upload_body)
    assert "application/yaml" in schema["paths"]["/recipes"]["post"]["requestBody"]["content"]
    assert "requestBody" in schema["paths"]["/runs"]["post"]


# --- one answer per action -------------------------------------------------------------


async def test_thirty_deletes_of_one_item_delete_it_once(l1: Harness) -> None:
    item = await upload(l1.http, os.urandom(4096))
    async with EventTap(l1.settings.nats_url, f"l1.cache.{item}.deleted") as tap:
        answers = await asyncio.gather(*(l1.http.delete(f"/cache/{item}") for _ in range(30)))
        statuses = sorted(a.status_code for a in answers)
        assert statuses.count(204) == 1, statuses
        assert set(statuses) <= {204, 404, 409}, statuses
        events = await tap.settled()
    assert len(events) == 1


async def _projected(nats_url: str) -> bool:
    """True once the cache projector has applied every cache event."""
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().consumer_info("L1_EVENTS", "cache-projector")
    finally:
        await nc.close()
    return info.num_pending == 0 and info.num_ack_pending == 0


async def _listed(http: httpx.AsyncClient, item: str) -> bool:
    page = (await http.get("/cache", params={"limit": 1000})).json()
    return item in {entry["content_hash"] for entry in page["items"]}


async def test_uploads_racing_deletes_leave_the_index_as_the_disk_is(l1: Harness) -> None:
    data = os.urandom(200 << 10)
    for _ in range(6):
        item = await upload(l1.http, data)
        await asyncio.gather(
            *(l1.http.post("/cache", content=data) for _ in range(20)),
            *(l1.http.delete(f"/cache/{item}") for _ in range(20)),
        )
        await wait_for(lambda: _projected(l1.settings.nats_url))
        on_disk = (await l1.http.head(f"/cache/{item}")).status_code == 200
        assert await _listed(l1.http, item) == on_disk


# --- a submit is recorded and answered 2xx, or neither -----------------------------------


async def test_a_run_recorded_while_jetstream_refuses_is_sent_once_it_is_back(
    l1: Harness,
) -> None:
    item = await upload(l1.http, os.urandom(1024))
    nc = await nats.connect(l1.settings.nats_url)
    try:
        js = nc.jetstream()
        await js.delete_stream(RENDER_STREAM)  # render requests now have nowhere to go
        response = await l1.http.post("/runs", json={"recipe": "identity", "inputs": [item]})
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
        assert (await l1.http.get(f"/runs/{run_id}")).json()["status"] == "pending"
        await ensure_streams(js, l1.settings)
    finally:
        await nc.close()
    run = await l1.finished_run(run_id, timeout=30)
    assert run["status"] == "completed" and run["output_hash"] == item


async def test_a_run_refused_for_nats_is_not_recorded(
    deployment: Deployment, own: OwnServers
) -> None:
    await deployment.start_api()
    item = await deployment.upload(os.urandom(1024))
    await asyncio.to_thread(own.nats.stop)

    async def refused() -> httpx.Response | None:
        response = await deployment.http.post(
            "/runs", json={"recipe": "identity", "inputs": [item]}
        )
        return response if response.status_code == 503 else None

    await wait_for(refused, timeout=20)
    listed = (await deployment.http.get("/runs")).json()["items"]
    assert listed == []
