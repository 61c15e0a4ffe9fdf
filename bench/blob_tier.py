"""What the blob tier costs: storing an item in it and fetching it back, in MB/s.

Starts ``--nodes`` nats-servers (one, or a cluster on loopback with the bucket
replicated ``--nodes`` times), writes a ``--size`` MiB file of random bytes, then times
SHA3-256 of the file alone (what no copy can beat), putting it in the tier (hashed as
it is read) and fetching it back to disk (hashed as it arrives, as a worker on another
host does), ``--rounds`` times.

    python -m bench.blob_tier --size 512
    python -m bench.blob_tier --size 512 --nodes 3
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nats
from nats.js.errors import NotFoundError

from bench.compare import machine
from bench.media_io import write_file
from l1.cache.blobs import BlobTier
from l1.cache.incoming import Incoming
from l1.events.transient import patiently
from l1.identifiers import new_hasher
from l1.stack import ServerProcess, free_port, nats_server

__all__ = ["main"]


def start_servers(root: Path, nodes: int) -> list[ServerProcess]:
    """``nodes`` nats-servers on loopback, clustered when more than one."""
    ports = [free_port() for _ in range(nodes)]
    routes = [free_port() for _ in range(nodes)]
    servers = []
    for index, port in enumerate(ports):
        cluster = (routes[index], routes) if nodes > 1 else None
        server = nats_server(
            port=port,
            store_dir=root / f"nats-{index}",
            log_path=root / f"nats-{index}.log",
            name=f"n{index}",
            cluster=cluster,
        )
        server.start()
        servers.append(server)
    return servers


def sha3_of(path: Path) -> str:
    """SHA3-256 of the file, read in 8 MiB blocks."""
    hasher = new_hasher()
    with path.open("rb") as file:
        while block := file.read(8 << 20):
            hasher.update(block)
    return hasher.hexdigest()


async def measure(urls: list[str], path: Path, nodes: int, rounds: int) -> None:
    """Print hash, put and fetch MB/s of ``path``, ``rounds`` times."""
    nc = await nats.connect(servers=urls)
    tier = BlobTier(nc.jetstream(timeout=30), replicas=nodes)
    # A new cluster elects its JetStream leader first.
    await patiently(tier.open, within=60, what="the blob tier", also=(NotFoundError,))
    megabytes = path.stat().st_size / 1e6
    figures: dict[str, list[float]] = {"hash alone": [], "put": [], "fetch": []}
    try:
        for _ in range(rounds):
            started = time.perf_counter()
            content_hash = await asyncio.to_thread(sha3_of, path)
            figures["hash alone"].append(megabytes / (time.perf_counter() - started))
            started = time.perf_counter()
            await tier.put(path, content_hash, content_type="application/octet-stream")
            figures["put"].append(megabytes / (time.perf_counter() - started))
            into = Incoming(path.with_suffix(".fetched"), max_bytes=1 << 40)
            started = time.perf_counter()
            try:
                assert await tier.fetch(content_hash, into)
                into.finish()
            finally:
                into.close()
            figures["fetch"].append(megabytes / (time.perf_counter() - started))
            await tier.delete(content_hash)
    finally:
        await nc.close()
    for what, values in figures.items():
        rounds = ", ".join(f"{v:.0f}" for v in values)
        print(f"{what:>10}: {statistics.median(values):7.0f} MB/s  (rounds: {rounds})")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512, help="MiB (default 512)")
    parser.add_argument("--nodes", type=int, default=1, help="nats-servers (and replicas)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="l1-blob-bench-"))
    servers = start_servers(root, args.nodes)
    try:
        path = root / "item.bin"
        write_file(path, args.size)
        print(f"{args.size} MiB, {args.nodes} nats-server(s) and replicas; {machine()}")
        urls = [f"nats://127.0.0.1:{server.port}" for server in servers]
        asyncio.run(measure(urls, path, args.nodes, args.rounds))
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
