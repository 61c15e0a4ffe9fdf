"""Media in and out: importing and uploading a large file against hashing it alone.

Starts a deployment, writes a ``--size`` MiB file of random bytes (once), then times,
round by round: SHA3-256 of the file alone (what storing it cannot beat), ``POST
/cache/import`` of it, SHA3-256 alone again, ``POST /cache`` of it (streamed), and
``GET /cache/{hash}`` of the imported item twice: the first read comes from the disk
(the store writes past the page cache), the second from the cache. Each store is of
bytes the cache does not hold yet (the file's first block is changed before each), and
fsync is part of it; each store's ratio is against the hashing timed just before it.

    python -m bench.media_io --size 1024 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from l1.stack import free_port
from l1.up import Deployment

__all__ = ["main"]

BLOCK = 8 << 20


def write_file(path: Path, mib: int) -> None:
    """``mib`` MiB of random bytes (one random block, repeated: the hash still reads all)."""
    block = os.urandom(BLOCK)
    with path.open("wb") as file:
        for _ in range(mib * (1 << 20) // BLOCK):
            file.write(block)


def freshen(path: Path) -> None:
    """Change the file's first bytes, so that the cache does not hold it yet."""
    with path.open("r+b") as file:
        file.write(os.urandom(64))


def hash_alone(path: Path) -> float:
    """Seconds SHA3-256 takes over the file (read a MiB at a time: its quickest here)."""
    hasher = hashlib.sha3_256()
    started = time.perf_counter()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            hasher.update(block)
    return time.perf_counter() - started


async def chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            yield block


async def one_round(http: aiohttp.ClientSession, path: Path) -> dict[str, float]:
    """Seconds each took in one round; every store is timed right after hashing alone."""
    seconds: dict[str, float] = {}
    freshen(path)
    seconds["hash before import"] = hash_alone(path)
    started = time.perf_counter()
    async with http.post("/cache/import", params={"path": str(path)}) as response:
        item = (await response.json())["content_hash"]
    seconds["import"] = time.perf_counter() - started
    freshen(path)
    seconds["hash before upload"] = hash_alone(path)
    started = time.perf_counter()
    async with http.post("/cache", data=chunks(path)) as response:
        assert response.status == 201, await response.text()
    seconds["upload"] = time.perf_counter() - started
    for name in ("download", "again"):
        started = time.perf_counter()
        async with http.get(f"/cache/{item}") as response:
            async for _ in response.content.iter_chunked(1 << 20):
                pass
        seconds[name] = time.perf_counter() - started
    return seconds


async def measure(url: str, path: Path, rounds: int) -> list[dict[str, float]]:
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(url, timeout=timeout) as http:
        return [await one_round(http, path) for _ in range(rounds)]


def _report(size_mib: int, rounds: list[dict[str, float]]) -> None:
    mb = size_mib * (1 << 20) / 1e6
    print(f"{size_mib} MiB, {os.cpu_count()} cores, {len(rounds)} rounds: median (range)")
    print(f"{'':12} {'MB/s':>18} {'vs hashing':>20}")
    hashing = [mb / r[k] for r in rounds for k in ("hash before import", "hash before upload")]
    print(f"{'hash alone':12} {_spread(hashing, 0)}")
    for name in ("import", "upload", "download", "again"):
        rates = _spread([mb / r[name] for r in rounds], 0)
        before = f"hash before {name}"
        ratios = _spread([r[before] / r[name] for r in rounds], 2) if before in rounds[0] else ""
        print(f"{name:12} {rates} {ratios}")


def _spread(values: list[float], digits: int) -> str:
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:8.{digits}f} ({low:.{digits}f} to {high:.{digits}f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="MiB (default 1024)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="l1-media-io-"))
    inbox = root / "inbox"
    inbox.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("L1_")}
    env |= {
        "L1_DATA_DIR": str(root / "data"),
        "L1_PORT": str(free_port()),
        "L1_IMPORT_ROOTS": str(inbox),
        "L1_MAX_UPLOAD_BYTES": str(4 * args.size << 20),
    }
    deployment = Deployment(env, nats_port=free_port(), redis_port=free_port())
    try:
        path = inbox / "large.bin"
        write_file(path, args.size)
        settings = deployment.start()
        rounds = asyncio.run(measure(settings.public_url, path, args.rounds))
    finally:
        deployment.stop()
        shutil.rmtree(root, ignore_errors=True)
    _report(args.size, rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
