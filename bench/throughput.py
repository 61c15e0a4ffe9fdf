"""Throughput of the core run path: HTTP submit → JetStream → workers → events → Redis.

Starts its own ``nats-server`` and Redis-compatible server on free ports, the API and
``--workers`` render workers as real processes, uploads ``--runs`` distinct small
inputs, submits one ``identity`` run over each from ``--clients`` concurrent HTTP
clients, waits for every run to finish, and prints what it measured::

    .venv/bin/python bench/throughput.py --runs 2000 --clients 32 --workers 2

Everything it started is stopped at the end, or when ``--deadline`` runs out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from l1.stack import free_port
from l1.timestamps import micros
from l1.up import Deployment

T = TypeVar("T")

# Times a request refused with 503 is sent again before the benchmark gives up.
RETRIES = 20


@dataclass
class Options:
    """What to measure, from the command line."""

    runs: int
    clients: int
    workers: int
    concurrency: int
    deadline: float
    keep: bool


def check_alive(deployment: Deployment) -> None:
    """Fail if an L1 process has exited."""
    if (name := deployment.dead()) is not None:
        raise RuntimeError(f"the {name} exited; see {deployment.logs}")


async def fan_out(
    items: Sequence[T], clients: int, call: Callable[[T], Awaitable[Any]]
) -> list[Any]:
    """``call`` over ``items`` from ``clients`` concurrent workers, results in order."""
    results: list[Any] = [None] * len(items)
    indexes: Iterator[int] = iter(range(len(items)))

    async def client() -> None:
        for index in indexes:
            results[index] = await call(items[index])

    await asyncio.gather(*(client() for _ in range(clients)))
    return results


@dataclass
class Refusals:
    """Requests sent again: answered 503, or cut off before an answer came."""

    count: int = 0
    transport: int = 0


async def request(
    http: httpx.AsyncClient, method: str, path: str, refusals: Refusals, **kwargs: Any
) -> httpx.Response:
    """Send a request again after a short pause while the server answers 503 or the
    connection fails (uploads and submissions are idempotent, so a repeat is safe)."""
    for attempt in range(RETRIES):
        try:
            response = await http.request(method, path, **kwargs)
        except httpx.TransportError:
            if attempt == RETRIES - 1:
                raise
            refusals.transport += 1
        else:
            if response.status_code != 503:
                return response
            refusals.count += 1
        await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
    return response


async def upload_inputs(
    http: httpx.AsyncClient, runs: int, clients: int, refusals: Refusals
) -> list[str]:
    """Upload ``runs`` distinct small inputs; their content hashes."""
    token = os.urandom(8).hex()

    async def one(index: int) -> str:
        body = f"bench {token} {index}".encode()
        response = await request(http, "POST", "/cache", refusals, content=body)
        response.raise_for_status()
        return str(response.json()["content_hash"])

    return await fan_out(list(range(runs)), clients, one)


async def submit_runs(
    http: httpx.AsyncClient, hashes: list[str], clients: int, refusals: Refusals
) -> list[str]:
    """Submit one ``identity`` run per input; their run ids."""

    async def one(content_hash: str) -> str:
        body = {"recipe": "identity", "inputs": [content_hash]}
        response = await request(http, "POST", "/runs", refusals, json=body)
        if response.status_code not in (200, 202):
            raise RuntimeError(f"submit: {response.status_code} {response.text}")
        return str(response.json()["run_id"])

    return await fan_out(hashes, clients, one)


async def runs_in(http: httpx.AsyncClient, status: str, refusals: Refusals) -> list[dict[str, Any]]:
    """Every run in ``status``, following the pages."""
    runs: list[dict[str, Any]] = []
    params: dict[str, Any] = {"status": status, "limit": 1000}
    while True:
        response = await request(http, "GET", "/runs", refusals, params=params)
        response.raise_for_status()
        page = response.json()
        runs.extend(page["items"])
        if not page["next_cursor"]:
            return runs
        params["cursor"] = page["next_cursor"]


async def wait_for_runs(
    http: httpx.AsyncClient,
    deployment: Deployment,
    run_ids: set[str],
    deadline: float,
    refusals: Refusals,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The completed and failed runs among ``run_ids`` once all have finished."""
    while True:
        check_alive(deployment)
        completed = [
            r for r in await runs_in(http, "completed", refusals) if r["run_id"] in run_ids
        ]
        failed = [r for r in await runs_in(http, "failed", refusals) if r["run_id"] in run_ids]
        if len(completed) + len(failed) >= len(run_ids):
            return completed, failed
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"only {len(completed)} completed and {len(failed)} failed "
                f"of {len(run_ids)} runs before the deadline"
            )
        await asyncio.sleep(0.5)


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` percentile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered)) - 1))
    return ordered[rank]


def report(
    options: Options,
    completed: list[dict[str, Any]],
    failed: list[dict[str, Any]],
    upload_seconds: float,
    submit_seconds: float,
) -> None:
    """Print the figures."""
    created = [micros(run["created_at"]) for run in completed]
    finished = [micros(run["completed_at"]) for run in completed]
    latencies = [(end - start) / 1e6 for start, end in zip(created, finished, strict=True)]
    span = (max(finished) - min(created)) / 1e6 if completed else float("nan")
    print(
        f"runs {options.runs}  clients {options.clients}  workers {options.workers} "
        f"x concurrency {options.concurrency}"
    )
    print(f"  uploads         {options.runs / upload_seconds:10.1f} /s")
    print(f"  submits         {options.runs / submit_seconds:10.1f} /s")
    print(f"  completed       {len(completed):10d}   failed {len(failed)}")
    if completed:
        print(f"  throughput      {len(completed) / span:10.1f} runs/s over {span:.2f}s")
        print(f"  latency p50     {percentile(latencies, 0.50) * 1000:10.1f} ms")
        print(f"  latency p99     {percentile(latencies, 0.99) * 1000:10.1f} ms")
        print(f"  latency max     {max(latencies) * 1000:10.1f} ms")
        print(f"  latency mean    {statistics.fmean(latencies) * 1000:10.1f} ms")


async def measure(options: Options, deployment: Deployment, deadline: float) -> None:
    """Upload, submit, wait and report."""
    limits = httpx.Limits(
        max_connections=options.clients, max_keepalive_connections=options.clients
    )
    base_url = deployment.settings.public_url
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
        refusals = Refusals()
        started = time.monotonic()
        hashes = await upload_inputs(http, options.runs, options.clients, refusals)
        upload_seconds = time.monotonic() - started
        started = time.monotonic()
        run_ids = await submit_runs(http, hashes, options.clients, refusals)
        submit_seconds = time.monotonic() - started
        completed, failed = await wait_for_runs(http, deployment, set(run_ids), deadline, refusals)
    report(options, completed, failed, upload_seconds, submit_seconds)
    print(f"  503 answers     {refusals.count:10d}   (each sent again)")
    print(f"  cut off         {refusals.transport:10d}   (each sent again)")


def parse(argv: list[str] | None = None) -> Options:
    """Options from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000, help="runs to submit (default 2000)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=4, help="render slots per worker")
    parser.add_argument("--deadline", type=float, default=600, help="seconds before giving up")
    parser.add_argument("--keep", action="store_true", help="keep the data directory and logs")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.clients < 1 or args.workers < 1 or args.concurrency < 1:
        parser.error("--runs, --clients, --workers and --concurrency must be at least 1")
    return Options(
        runs=args.runs,
        clients=args.clients,
        workers=args.workers,
        concurrency=args.concurrency,
        deadline=args.deadline,
        keep=args.keep,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when every run completed in time."""
    options = parse(argv)
    root = Path(tempfile.mkdtemp(prefix="l1-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("L1_")}
    env.update({"L1_DATA_DIR": str(root / "data"), "L1_PORT": str(free_port())})
    deployment = Deployment(
        env,
        nats_port=free_port(),
        redis_port=free_port(),
        workers=options.workers,
        concurrency=options.concurrency,
    )
    deadline = time.monotonic() + options.deadline
    try:
        deployment.start()
        asyncio.run(asyncio.wait_for(measure(options, deployment, deadline), options.deadline))
    except (TimeoutError, RuntimeError, httpx.HTTPError) as error:
        print(f"benchmark failed: {error!r}; logs in {deployment.logs}", file=sys.stderr)
        options.keep = True
        return 1
    finally:
        deployment.stop()
        if not options.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
