"""A fleet of hosts that share no disk, over a three-server NATS cluster: items move
between hosts through the blob tier, and losing a NATS server loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import nats
import nats.errors
import pytest
from nats.js import JetStreamContext
from nats.js.api import ObjectStoreConfig, StorageType
from PIL import Image

from l1.cache.blobs import BUCKET
from l1.events.streams import EVENTS_STREAM, RENDER_STREAM, RUN_PROJECTOR, WORKERS
from l1.identifiers import sha3_hex
from tests.effect_fixtures import slow_output, stamp_output
from tests.fleet import GROUPS, NODES, Cluster, hand_leadership, host, leaders
from tests.harness import EventTap, wait_for
from tests.media import make_clip
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


# Runs submitted in each phase of a kill: before it (in flight when the server goes),
# while the server is down, and once it is back.
PER_PHASE = 8
# Every run accepted finishes within this long of the new leaders being elected (or of
# its acceptance, if later). Redelivery after AckWait (10 s here) fits well inside it.
WITHIN = 60.0


def then_stamp(effect: str) -> bytes:
    """A two-step recipe, ``<effect>-then-stamp``: ``effect``, then ``stamp`` over it."""
    return f"""
name: {effect}-then-stamp
inputs: [{{name: picture}}]
nodes:
  - {{id: src, type: SOURCE, config: {{input: picture}}}}
  - {{id: first, type: EFFECT, config: {{effect: {effect}}}, inputs: [src]}}
  - {{id: stamped, type: EFFECT, config: {{effect: stamp}}, inputs: [first]}}
output: stamped
""".encode()


INVERT_THEN_STAMP = then_stamp("invert")
SLOW_THEN_STAMP = then_stamp("slow")


@pytest.fixture
async def unreconciled(
    tmp_path: Path, cluster: Cluster
) -> AsyncIterator[tuple[Deployment, Deployment]]:
    """Hosts A and B whose reconciler never finds a run stale (not within an hour):
    a render request lost in a failover stays lost, rather than being sent again."""
    never = {"L1_STALE_AFTER": "3600", "L1_RECONCILE_EVERY": "3600"}
    a, b = host(tmp_path, cluster, 0, **never), host(tmp_path, cluster, 1, **never)
    try:
        yield a, b
    finally:
        await asyncio.gather(a.close(), b.close())
        print(a.logs(), b.logs(), sep="\n")


def small_picture() -> bytes:
    """A PNG of a few random pixels: an input no other run has used."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (4, 4), os.urandom(48)).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_every_run_finishes_within_a_minute_of_each_server_dying_as_leader(
    unreconciled: tuple[Deployment, Deployment], cluster: Cluster
) -> None:
    a, b = unreconciled
    await asyncio.gather(a.start_api(timeout=60), b.start_api(timeout=60))
    a.start_worker(concurrency=2)
    b.start_worker(concurrency=2)
    registered = await a.http.post("/recipes", content=INVERT_THEN_STAMP)
    assert registered.status_code == 201, registered.text
    apis = [a, b]
    loop = asyncio.get_running_loop()
    accepted: dict[str, float] = {}  # run id → when its POST was answered

    async def submit(number: int) -> None:
        # Uploaded through one host and submitted through the other, which finds the
        # input in the blob tier. Two steps: the API sends the first, the run projector
        # the second.
        stored = await _until_accepted(apis[number % 2].http, "/cache", content=small_picture())
        body = {"recipe": "invert-then-stamp", "inputs": {"picture": stored.json()["content_hash"]}}
        run = await _until_accepted(apis[(number + 1) % 2].http, "/runs", json=body)
        accepted[run.json()["run_id"]] = loop.time()

    async def submit_many() -> None:
        await asyncio.gather(*(submit(n) for n in range(PER_PHASE)))

    async def finished_by(run_id: str, deadline: float) -> float | None:
        """When the run finished (completed), or None if it had not by ``deadline``."""
        try:
            run = await a.finished(run_id, timeout=max(deadline - loop.time(), 0.1))
        except AssertionError:
            return None
        assert run["status"] == "completed", run
        return loop.time()

    control = await nats.connect(servers=cluster.urls().split(","))
    js = control.jetstream(timeout=1)
    after_election: list[float] = []  # seconds from the election to each run finishing
    try:
        for victim in range(NODES):
            name = cluster.name(victim)
            await hand_leadership(control, js, name)  # every group dies with it
            first = len(accepted)
            await submit_many()  # queued or rendering when their leaders die
            await cluster.kill(victim)
            down = asyncio.ensure_future(submit_many())
            await wait_for(lambda: _elected_without(js, name), timeout=60, interval=0.1)  # noqa: B023
            elected_at = loop.time()
            await down
            await cluster.revive(victim)
            await submit_many()
            run_ids = list(accepted)[first:]
            deadlines = [max(elected_at, accepted[run_id]) + WITHIN for run_id in run_ids]
            ends = await asyncio.gather(*map(finished_by, run_ids, deadlines))
            stuck = [run_id for run_id, end in zip(run_ids, ends, strict=True) if end is None]
            assert not stuck, f"killing {name}: {await _stuck(a, js, stuck)}"
            after_election += [end - elected_at for end in ends if end is not None]
    finally:
        await control.close()
    print(f"{len(accepted)} runs over {NODES} kills of every leader;", end=" ")
    print(f"the last finished {max(after_election):.1f}s after its new leaders were elected")


async def _elected_without(js: JetStreamContext, name: str) -> bool:
    """True once every group has a leader other than the server called ``name``."""
    return all(leader not in (None, name) for leader in (await leaders(js)).values())


async def _stuck(deployment: Deployment, js: JetStreamContext, run_ids: list[str]) -> str:
    """What the runs left unfinished read, and whether their requests are still queued."""
    lines = [f"{len(run_ids)} run(s) not finished in time"]
    for run_id in run_ids[:5]:
        run = await deployment.run(run_id)
        steps = []
        for step in run["steps"]:
            subject = f"l1.render.{run['recipe']}.{run_id}.{step['node_id']}"
            try:
                await js.get_last_msg(RENDER_STREAM, subject)
                queued = "queued"
            except (nats.errors.Error, TimeoutError) as error:
                queued = f"not queued ({type(error).__name__})"
            steps.append(f"{step['node_id']} {step['status']}, request {queued}")
        said = "; ".join(steps)
        lines.append(f"{run_id[:12]} {run['status']} attempts={run['attempts']}: {said}")
    with contextlib.suppress(nats.errors.Error, TimeoutError):
        info = await js.consumer_info(RENDER_STREAM, WORKERS)
        lines.append(
            f"workers: pending {info.num_pending}, unacked {info.num_ack_pending}, "
            f"redelivered {info.num_redelivered}, pulls waiting {info.num_waiting}, "
            f"led by {info.cluster.leader if info.cluster else None}"
        )
    return "\n".join(lines)


async def test_a_run_accepted_while_the_blob_tier_cannot_answer_is_still_sent(
    unreconciled: tuple[Deployment, Deployment], cluster: Cluster
) -> None:
    # The tier's bucket on one server only, so that killing it leaves the tier silent
    # while the streams (three replicas) go on: the API records the run, then cannot
    # ask the tier about its input.
    control = await nats.connect(servers=cluster.urls().split(","))
    try:
        # Generous: a cluster just started may still be electing its meta leader, and a
        # busy machine slows that down.
        js = control.jetstream(timeout=30)
        single = ObjectStoreConfig(bucket=BUCKET, storage=StorageType.FILE, replicas=1)
        await js.create_object_store(BUCKET, single)
        info = await js.stream_info(f"OBJ_{BUCKET}")
        assert info.cluster is not None
        holder = next(n for n in range(NODES) if cluster.name(n) == info.cluster.leader)
    finally:
        await control.close()
    a, b = unreconciled
    await asyncio.gather(a.start_api(timeout=60), b.start_api(timeout=60))
    b.start_worker()
    await wait_for(lambda: _workers(b), timeout=60, interval=0.2)
    item = await b.upload(small_picture())  # B holds a copy; A must ask the tier
    await cluster.kill(holder)
    body = {"recipe": "invert", "inputs": [item]}

    first = await a.http.post("/runs", json=body)  # while the tier cannot answer

    assert first.status_code in (202, 503), first.text
    await cluster.revive(holder)
    run_id = (await _until_accepted(a.http, "/runs", json=body)).json()["run_id"]
    control = await nats.connect(servers=cluster.urls().split(","))
    try:
        try:
            run = await a.finished(run_id, timeout=WITHIN)
        except AssertionError:
            raise AssertionError(await _stuck(a, control.jetstream(), [run_id])) from None
    finally:
        await control.close()
    assert run["status"] == "completed", run


async def _workers(deployment: Deployment) -> bool:
    """True once a worker says it is alive."""
    response = await deployment.http.get("/workers")
    return response.status_code == 200 and bool(response.json()["items"])


async def test_a_next_step_not_sent_while_the_render_queue_was_down_is_sent_once_it_is_back(
    unreconciled: tuple[Deployment, Deployment], cluster: Cluster
) -> None:
    a, b = unreconciled
    await asyncio.gather(a.start_api(timeout=60), b.start_api(timeout=60))
    b.start_worker()
    await wait_for(lambda: _workers(b), timeout=60, interval=0.2)  # streams declared
    control = await nats.connect(servers=cluster.urls().split(","))
    try:
        js = control.jetstream(timeout=2)
        # The render queue on one server only, so that killing it stops every send to
        # it for as long as it is down, while the events (three replicas) go on.
        config = (await js.stream_info(RENDER_STREAM)).config
        config.num_replicas = 1
        await js.update_stream(config)
        leader = await wait_for(lambda: _on_one_server(js, RENDER_STREAM, WORKERS), timeout=30)
        holder = next(n for n in range(NODES) if cluster.name(n) == leader)
        elsewhere = cluster.name((holder + 1) % NODES)
        # What the first step's outcome goes through (its events, its output in the
        # tier) is led elsewhere, so that only the next step's send meets the outage.
        others = [group for group in GROUPS if group[0] != RENDER_STREAM]
        await hand_leadership(control, js, elsewhere, others)
        registered = await a.http.post("/recipes", content=SLOW_THEN_STAMP)
        assert registered.status_code == 201, registered.text
        data = unique("two steps")
        body = {"recipe": "slow-then-stamp", "inputs": {"picture": await a.upload(data)}}
        run_id = (await _until_accepted(a.http, "/runs", json=body)).json()["run_id"]
        await wait_for(lambda: _reads(a, run_id, "running"), timeout=30)

        await cluster.kill(holder)  # while the first step renders
        # Its event comes back (the next step could not be sent) until the queue is back.
        # A worker whose own connection was on the killed server may instead hand the
        # first step back (its outcome could not be told): then both steps go once the
        # queue is back, which the end of this test holds to as well.
        await wait_for(lambda: _met_the_outage(js, (a, b)), timeout=60, interval=0.2)
        await cluster.revive(holder)

        try:
            run = await a.finished(run_id, timeout=WITHIN)
        except AssertionError:
            raise AssertionError(await _stuck(a, js, [run_id])) from None
    finally:
        await control.close()
    assert run["status"] == "completed", run
    assert run["output_hash"] == sha3_hex(stamp_output(slow_output(data)))


async def _on_one_server(js: JetStreamContext, stream: str, durable: str) -> str | None:
    """The server holding ``stream`` and its consumer ``durable``, once both are kept
    on that one alone (no followers left)."""
    try:
        kept = await js.stream_info(stream)
        consumer = await js.consumer_info(stream, durable)
    except (nats.errors.Error, TimeoutError):
        return None
    alone = [info for info in (kept.cluster, consumer.cluster) if info and not info.replicas]
    leaders = {info.leader for info in alone}
    return leaders.pop() if len(alone) == 2 and len(leaders) == 1 else None


async def _reads(deployment: Deployment, run_id: str, status: str) -> bool:
    return (await deployment.run(run_id))["status"] == status


async def _met_the_outage(js: JetStreamContext, hosts: tuple[Deployment, ...]) -> bool:
    """True once the next step's send failed (its event is delivered again), or a
    worker handed the first step back."""
    if await _redelivered(js, RUN_PROJECTOR):
        return True
    return any("handed back" in child.log() for host in hosts for child in host.children)


async def _redelivered(js: JetStreamContext, durable: str) -> bool:
    """True while an event of ``durable``'s is being delivered again."""
    try:
        info = await js.consumer_info(EVENTS_STREAM, durable)
    except (nats.errors.Error, TimeoutError):
        return False
    return bool(info.num_redelivered)


async def test_one_long_render_is_shared_by_the_workers_of_both_hosts(
    tmp_path: Path, cluster: Cluster
) -> None:
    # Parts of half a second: a 4 s clip is nine parts for the two hosts' four slots.
    a, b = (host(tmp_path, cluster, index, L1_SEGMENT_SECONDS="0.5") for index in range(2))
    try:
        await asyncio.gather(a.start_api(timeout=60), b.start_api(timeout=60))
        a.start_worker(concurrency=2)
        b.start_worker(concurrency=2)
        await wait_for(lambda: _workers_alive(a, 2), timeout=60, interval=0.2)
        clip = make_clip(tmp_path / "long.mp4", 4.0, 320, 240, 24).read_bytes()
        item = await a.upload(clip)

        run = await a.finished((await a.submit("blur", [item]))["run_id"], timeout=120)

        assert run["status"] == "completed", run
        ((_, parts),) = run["segments"].items()  # the recipe's one step, split
        assert {p["status"] for p in parts} == {"completed"}
        assert len({p["worker"] for p in parts}) >= 2, parts
        output = run["output_hash"]
        bodies = [(await _until_ok(api.http, "GET", f"/cache/{output}")).content for api in (a, b)]
        assert bodies[0] == bodies[1]
        assert sha3_hex(bodies[0]) == output
    finally:
        await asyncio.gather(a.close(), b.close())
        print(a.logs(), b.logs(), sep="\n")


async def _workers_alive(deployment: Deployment, count: int) -> bool:
    """True once ``count`` workers say they are alive."""
    response = await deployment.http.get("/workers")
    return response.status_code == 200 and len(response.json()["items"]) >= count
