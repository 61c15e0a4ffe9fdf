"""Where a run's time and the machine's CPU go, stage by stage.

Starts a deployment (``l1 up``'s, on free ports, under a temporary directory), imports
``--runs`` distinct inputs, then submits one ``identity`` run over each from
``--clients`` concurrent HTTP clients (or, with ``--rate``, at that many per second)
and waits for every ``completed`` event. It prints:

- the submit's stages as the API timed them (its ``Server-Timing`` header: plan,
  record, send) and as the client saw them;
- each run's life from the servers' own timestamps: queued (accepted → a worker took
  it), render (→ output stored), report (→ ``completed`` published), project
  (→ the run record says completed);
- the CPU each process used per run (its children included), and the load client's.

    python -m bench.stages --runs 2000 --clients 32
    python -m bench.stages --runs 2000 --rate 150
    python -m bench.stages --runs 2000 --blob-tier   # every output also put in the tier
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import nats
from nats.js.api import DeliverPolicy

from bench.processes import cpu_seconds
from l1.stack import free_port
from l1.timestamps import micros
from l1.up import Deployment

__all__ = ["main"]


@dataclass
class Load:
    """What a load left behind to be measured."""

    submitted: dict[str, float] = field(default_factory=dict)  # run id → client seconds
    timings: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    completed: dict[str, dict[str, Any]] = field(default_factory=dict)  # run id → event
    elapsed: float = 0.0


async def import_inputs(
    http: aiohttp.ClientSession, root: Path, runs: int, clients: int
) -> list[str]:
    """Write ``runs`` distinct 64 KiB inputs under ``root`` and import them."""
    gate = asyncio.Semaphore(clients)

    async def one(index: int) -> str:
        path = root / f"input-{index}"
        path.write_bytes(os.urandom(64 << 10))
        async with gate, http.post("/cache/import", params={"path": str(path)}) as response:
            response.raise_for_status()
            return str((await response.json())["content_hash"])

    return await asyncio.gather(*(one(i) for i in range(runs)))


async def submit(http: aiohttp.ClientSession, item: str, load: Load) -> None:
    """One ``identity`` run over ``item``."""
    started = time.perf_counter()
    async with http.post("/runs", json={"recipe": "identity", "inputs": [item]}) as response:
        if response.status not in (200, 202):
            raise RuntimeError(f"submit: {response.status} {await response.text()}")
        run_id = (await response.json())["run_id"]
        for part in response.headers.get("Server-Timing", "").split(","):
            name, _, duration = part.strip().partition(";dur=")
            if duration:
                load.timings[name].append(float(duration))
    load.submitted[run_id] = time.perf_counter() - started


async def drive(
    http: aiohttp.ClientSession, items: list[str], clients: int, rate: float | None, load: Load
) -> None:
    """Submit a run per item: ``clients`` at a time, or ``rate`` a second."""
    if rate is None:
        queue = iter(items)

        async def client() -> None:
            for item in queue:
                await submit(http, item, load)

        await asyncio.gather(*(client() for _ in range(clients)))
        return
    loop = asyncio.get_running_loop()
    start = loop.time()
    pending = []
    for index, item in enumerate(items):
        await asyncio.sleep(max(0.0, start + index / rate - loop.time()))
        pending.append(asyncio.create_task(submit(http, item, load)))
    await asyncio.gather(*pending)


async def completions(nats_url: str, load: Load, expected: int) -> None:
    """Collect every ``completed`` event until ``expected`` have come."""
    done = asyncio.Event()
    nc = await nats.connect(nats_url)

    async def received(msg: Any) -> None:
        event = json.loads(msg.data)
        load.completed[event["run_id"]] = event
        if len(load.completed) >= expected:
            done.set()

    try:
        await nc.jetstream().subscribe(
            "l1.runs.*.completed", cb=received, ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
        )  # fmt: skip
        await done.wait()
    finally:
        await nc.close()


async def measure(deployment: Deployment, runs: int, clients: int, rate: float | None) -> None:
    """Import, then submit and wait, then print what it cost."""
    settings = deployment.settings
    connector = aiohttp.TCPConnector(limit=max(clients, 64))
    async with aiohttp.ClientSession(settings.public_url, connector=connector) as http:
        items = await import_inputs(http, settings.import_roots[0], runs, clients)
        load = Load()
        assert settings.nats_url is not None
        watching = asyncio.create_task(completions(settings.nats_url, load, runs))
        await asyncio.sleep(0.5)  # let the subscription settle before the first run
        processes = {name: child.pid for name, child in deployment.children.items()}
        processes |= {server.name: server.pid for server in deployment.servers if server.pid}
        before, client_before = cpu_seconds(processes), _own_cpu()
        started = time.perf_counter()
        await drive(http, items, clients, rate, load)
        await asyncio.wait_for(watching, timeout=600)
        load.elapsed = time.perf_counter() - started
        after, client_after = cpu_seconds(processes), _own_cpu()
        records = await _records(http, list(load.submitted))
    _report(
        load, records, runs, {k: after[k] - before[k] for k in after}, client_after - client_before
    )


async def _records(http: aiohttp.ClientSession, run_ids: list[str]) -> list[dict[str, Any]]:
    gate = asyncio.Semaphore(32)

    async def one(run_id: str) -> dict[str, Any]:
        async with gate, http.get(f"/runs/{run_id}") as response:
            return dict(await response.json())

    return await asyncio.gather(*(one(r) for r in run_ids))


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _ms(values: list[float]) -> str:
    if not values:
        return "        -"
    ordered = sorted(values)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[max(0, round(0.99 * len(ordered)) - 1)]
    return f"{p50:8.2f} {p99:8.2f}"


def _report(
    load: Load, records: list[dict[str, Any]], runs: int, cpu: dict[str, float], client: float
) -> None:
    span = _span(records)
    print(f"{runs} runs in {span:.2f}s: {runs / span:.0f} runs/s (server clock)")
    print(f"{'stage':28} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"{'submit, as the client saw it':28} {_ms([s * 1000 for s in load.submitted.values()])}")
    for name, values in load.timings.items():
        print(f"{'  api: ' + name:28} {_ms(values)}")
    lives = defaultdict(list)
    for run in records:
        event = load.completed.get(run["run_id"])
        if event is None:
            continue
        accepted = micros(run["created_at"])
        taken = micros(event.get("started_at") or run["started_at"] or event["at"])
        stored = micros(event["provenance"]["rendered_at"])
        reported = micros(event["at"])
        projected = micros(run["updated_at"])
        lives["queued (to a worker)"].append((taken - accepted) / 1000)
        lives["render (to stored)"].append((stored - taken) / 1000)
        lives["report (completed sent)"].append((reported - stored) / 1000)
        lives["project (record updated)"].append((projected - reported) / 1000)
        lives["accepted to recorded done"].append((projected - accepted) / 1000)
    for name, values in lives.items():
        print(f"{name:28} {_ms(values)}")
    print(f"{'CPU per run':28} {'ms':>8}")
    for name, seconds in sorted(cpu.items(), key=lambda item: -item[1]):
        print(f"  {name:26} {seconds / runs * 1000:8.2f}")
    print(f"  {'load client':26} {client / runs * 1000:8.2f}")
    total = sum(cpu.values())
    print(f"  {'L1 in all':26} {total / runs * 1000:8.2f}   ({total / load.elapsed:.2f} cores)")


def _span(records: list[dict[str, Any]]) -> float:
    created = [micros(r["created_at"]) for r in records]
    finished = [micros(r["completed_at"]) for r in records if r["completed_at"]]
    return (max(finished) - min(created)) / 1e6


def main(argv: list[str] | None = None) -> int:
    """Run the measurement; 0 when every run completed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rate", type=float, default=None, help="runs a second (open loop)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--api-processes", type=int, default=1)
    parser.add_argument(
        "--blob-tier", action="store_true", help="with the blob tier on (L1_BLOB_TIER)"
    )
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="l1-stages-"))
    inbox = root / "inbox"
    inbox.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("L1_")}
    env |= {"L1_DATA_DIR": str(root / "data"), "L1_PORT": str(free_port()),
            "L1_IMPORT_ROOTS": str(inbox)}  # fmt: skip
    env["L1_BLOB_TIER"] = "on" if args.blob_tier else "off"
    deployment = Deployment(
        env,
        nats_port=free_port(),
        redis_port=free_port(),
        workers=args.workers,
        api_processes=args.api_processes,
    )
    try:
        deployment.start()
        asyncio.run(measure(deployment, args.runs, args.clients, args.rate))
    except (RuntimeError, TimeoutError, aiohttp.ClientError) as error:
        print(f"failed: {error!r}; logs in {deployment.logs}", file=sys.stderr)
        return 1
    finally:
        deployment.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
