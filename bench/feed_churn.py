"""Pages opening and closing the live feed while the API stays responsive and small.

Run from the repository root::

    python -m bench.feed_churn                        # 500 runs, then 8 clients for 60 s
    python -m bench.feed_churn --runs 200 --seconds 20
    python -m bench.feed_churn --during 2000         # and runs render while they churn

Starts ``l1 up``'s processes on free ports, renders ``--runs`` identity runs over fresh
inputs (the load client of ``bench.compare``), then has ``--clients`` clients open
``/ui/events``, read it a moment and close it, over and over, for ``--seconds``, while
``/health`` is asked every ``--every`` seconds (and, with ``--during``, that many more
runs render meanwhile, so that each page opens onto recent runs to catch up on).
Prints ``/health``'s latency (p50/p99/max) and answers, the connections made and
refused, and the API process's resident memory at the start, after the runs, at its
peak during the churn and at the end. Targets: ``/health`` p99 under 300 ms, memory
within 200 MB of the start.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from bench.compare import l1_deployment, load, machine

__all__ = ["main"]

Runs = Callable[[], dict[str, Any]]

TARGET_P99_MS = 300.0
TARGET_GROWTH_MB = 200.0


def rss_mb(pid: int) -> float:
    """The resident memory of ``pid``, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered)) - 1))]


@dataclass
class Churn:
    """What the churn saw."""

    health_ms: list[float] = field(default_factory=list)
    health_status: Counter[str] = field(default_factory=Counter)
    feed_status: Counter[str] = field(default_factory=Counter)
    peak_mb: float = 0.0
    during: dict[str, Any] | None = None  # the load client's figures for runs meanwhile


async def _client(http: aiohttp.ClientSession, until: float, churn: Churn) -> None:
    """Open the feed, read it for a moment, close it; again until ``until``."""
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        try:
            async with http.get("/ui/events") as response:
                churn.feed_status[str(response.status)] += 1
                if response.status == 200:
                    await asyncio.wait_for(response.content.readline(), timeout=5)
                    hold = random.uniform(0.05, 0.5)
                    read = response.content.read(1 << 16)
                    await asyncio.wait_for(read, timeout=hold)
                else:
                    await response.read()
                    await asyncio.sleep(0.1)
        except TimeoutError:
            pass  # held as long as meant: the page closes
        except aiohttp.ClientError as error:
            churn.feed_status[type(error).__name__] += 1


async def _health(
    http: aiohttp.ClientSession, until: float, every: float, pid: int, churn: Churn
) -> None:
    """Ask ``/health`` every ``every`` seconds until ``until``; watch the API's memory."""
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        began = time.perf_counter()
        try:
            async with http.get("/health") as response:
                await response.read()
                churn.health_status[str(response.status)] += 1
        except (aiohttp.ClientError, TimeoutError) as error:
            churn.health_status[type(error).__name__] += 1
        churn.health_ms.append((time.perf_counter() - began) * 1000)
        churn.peak_mb = max(churn.peak_mb, rss_mb(pid))
        await asyncio.sleep(max(0.0, every - (time.perf_counter() - began)))


async def churn(
    url: str, pid: int, *, clients: int, seconds: float, every: float, runs: Runs | None
) -> Churn:
    """``clients`` clients churning the feed for ``seconds`` while ``/health`` is timed
    (and ``runs`` render)."""
    seen = Churn()
    until = asyncio.get_running_loop().time() + seconds
    rendering = asyncio.create_task(asyncio.to_thread(runs)) if runs is not None else None
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        aiohttp.ClientSession(url, timeout=timeout) as feed,
        aiohttp.ClientSession(url, timeout=timeout) as health,
    ):
        await asyncio.gather(
            _health(health, until, every, pid, seen),
            *(_client(feed, until, seen) for _ in range(clients)),
        )
    if rendering is not None:
        seen.during = await rendering
    return seen


def main(argv: list[str] | None = None) -> int:
    """Render, churn, print the figures; 1 if a target was missed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=0.05, help="seconds between /health")
    parser.add_argument("--during", type=int, default=0, help="runs rendered while churning")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="l1-feed-churn-"))
    inbox = root / "inbox"
    inbox.mkdir()
    print(f"machine: {machine()}")
    deployment = l1_deployment(root / "l1", inbox)
    try:
        settings = deployment.start()
        pid = deployment.children["api"].pid
        start_mb = rss_mb(pid)
        ran = load(settings.public_url, args.runs, 32, inbox)
        print(f"runs: {ran['completed']} of {args.runs} completed ({ran['runs_per_s']} runs/s)")
        before_mb = rss_mb(pid)
        during = partial(load, settings.public_url, args.during, 8, inbox) if args.during else None
        seen = asyncio.run(
            churn(
                settings.public_url,
                pid,
                clients=args.clients,
                seconds=args.seconds,
                every=args.every,
                runs=during,
            )
        )
        after_mb = rss_mb(pid)
    finally:
        deployment.stop()
    p50, p99 = pct(seen.health_ms, 0.5), pct(seen.health_ms, 0.99)
    print(f"feed churn: {args.clients} clients for {args.seconds:g} s, answers "
          f"{dict(sorted(seen.feed_status.items()))}")  # fmt: skip
    if seen.during is not None:
        print(f"runs meanwhile: {seen.during['completed']} of {args.during} completed "
              f"({seen.during['runs_per_s']} runs/s)")  # fmt: skip
    print(f"/health: {len(seen.health_ms)} asked, p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
          f"max {max(seen.health_ms):.1f} ms, answers {dict(seen.health_status)}")  # fmt: skip
    print(f"API memory (RSS): start {start_mb:.0f} MB, after the runs {before_mb:.0f} MB, "
          f"peak while churning {seen.peak_mb:.0f} MB, end {after_mb:.0f} MB")  # fmt: skip
    growth = max(seen.peak_mb, after_mb) - start_mb
    met = p99 < TARGET_P99_MS and growth < TARGET_GROWTH_MB
    print(f"targets (p99 < {TARGET_P99_MS:.0f} ms, growth < {TARGET_GROWTH_MB:.0f} MB): "
          f"{'met' if met else 'missed'} (p99 {p99:.1f} ms, growth {growth:.0f} MB)")  # fmt: skip
    shutil.rmtree(root, ignore_errors=True)  # its inputs and outputs: hundreds of MB
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
