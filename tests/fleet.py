"""A fleet on loopback: three clustered ``nats-server`` processes, one Redis, and hosts
that share nothing on disk.

Each host is a :class:`~tests.processes.Deployment` with its own data directory (so its
own local cache), the blob tier on and every stream and bucket replicated three times.
Hosts list the cluster's servers in a different order, so that they start on different
ones; what one host stores reaches the others only through JetStream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import nats
import nats.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from l1.cache.blobs import BUCKET
from l1.events.streams import (
    CACHE_PROJECTOR,
    EVENTS_STREAM,
    RENDER_STREAM,
    RUN_PROJECTOR,
    WORKERS,
)
from l1.stack import ServerProcess, nats_server, redis_server
from tests.harness import wait_for
from tests.processes import Deployment

__all__ = ["GROUPS", "NODES", "Cluster", "hand_leadership", "host", "leaders"]

NODES = 3

# What a server may lead that runs depend on: a stream (consumer None) or a durable
# consumer of one. Each is a Raft group of its own, with a leader of its own.
Group = tuple[str, str | None]
GROUPS: tuple[Group, ...] = (
    (f"OBJ_{BUCKET}", None),  # the blob tier
    (RENDER_STREAM, None),
    (RENDER_STREAM, WORKERS),
    (EVENTS_STREAM, None),
    (EVENTS_STREAM, RUN_PROJECTOR),
    (EVENTS_STREAM, CACHE_PROJECTOR),
)


class Cluster:
    """Three NATS servers routed to each other, and a Redis-compatible server."""

    def __init__(self, root: Path) -> None:
        ports = [_unclaimed_port() for _ in range(NODES)]
        routes = [_unclaimed_port() for _ in range(NODES)]
        self.nodes: list[ServerProcess] = [
            nats_server(
                port=ports[i],
                store_dir=root / f"nats-{i}",
                log_path=root / "logs" / f"nats-{i}.log",
                name=f"n{i}",
                cluster=(routes[i], [r for j, r in enumerate(routes) if j != i]),
            )
            for i in range(NODES)
        ]
        self.redis: ServerProcess = redis_server(
            port=_unclaimed_port(), data_dir=root / "redis", log_path=root / "logs" / "redis.log"
        )

    @staticmethod
    def name(node: int) -> str:
        """Node ``node``'s server name (what JetStream reports as a group's leader)."""
        return f"n{node}"

    def url(self, node: int) -> str:
        """Node ``node``'s URL."""
        return f"nats://127.0.0.1:{self.nodes[node].port}"

    def urls(self, first: int = 0) -> str:
        """Every server's URL, starting from node ``first`` (what ``L1_NATS_URL`` takes)."""
        return ",".join(self.url(i) for i in [*range(first, NODES), *range(first)])

    @property
    def redis_url(self) -> str:
        """Where Redis listens (L1's default database, 5)."""
        return f"redis://127.0.0.1:{self.redis.port}/5"

    async def start(self) -> None:
        """Start every server (the NATS ones together: each waits for its routes), and
        wait until the cluster has elected the leader JetStream needs."""
        await asyncio.gather(*(asyncio.to_thread(node.start) for node in self.nodes))
        await asyncio.to_thread(self.redis.start)
        nc = await nats.connect(servers=self.urls().split(","))
        try:
            await wait_for(lambda: _answers(nc.jetstream()), timeout=60, interval=0.5)
        finally:
            await nc.close()

    async def kill(self, node: int) -> None:
        """Kill node ``node`` at once (SIGKILL), as a crash would."""
        await asyncio.to_thread(self.nodes[node].kill)

    async def revive(self, node: int) -> None:
        """Start node ``node`` again on its port and data."""
        await asyncio.to_thread(self.nodes[node].start)

    async def stop(self) -> None:
        """Stop every server still running."""
        await asyncio.gather(
            *(asyncio.to_thread(server.stop) for server in (*self.nodes, self.redis))
        )


def _unclaimed_port() -> int:
    """A free port below Linux's ephemeral range: the servers connect to each other as
    they start, and the local ends of those connections take ephemeral ports, which
    could be one picked for a server that has not started yet."""
    while True:
        port = random.randrange(20_000, 32_000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


async def leaders(js: JetStreamContext) -> dict[Group, str | None]:
    """The server leading each of :data:`GROUPS` now, by name; None for a group that
    has none this moment (electing one, or its info not answered)."""
    found: dict[Group, str | None] = {}
    for stream, consumer in GROUPS:
        try:
            if consumer is None:
                info = (await js.stream_info(stream)).cluster
            else:
                info = (await js.consumer_info(stream, consumer)).cluster
        except (nats.errors.Error, TimeoutError):
            info = None
        found[(stream, consumer)] = None if info is None else info.leader
    return found


async def hand_leadership(
    nc: NATS, js: JetStreamContext, name: str, groups: Collection[Group] = GROUPS
) -> None:
    """Make the server called ``name`` the leader of every one of ``groups`` (a leader
    stepdown naming it as preferred), and wait until it leads them all."""

    async def leads_all() -> bool:
        led = {group: leader for group, leader in (await leaders(js)).items() if group in groups}
        for (stream, consumer), leader in led.items():
            if leader is None or leader == name:
                continue
            group = stream if consumer is None else f"{stream}.{consumer}"
            kind = "STREAM" if consumer is None else "CONSUMER"
            request = json.dumps({"placement": {"preferred": name}}).encode()
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await nc.request(f"$JS.API.{kind}.LEADER.STEPDOWN.{group}", request, timeout=2)
        return all(leader == name for leader in led.values())

    await wait_for(leads_all, timeout=60, interval=0.5)


async def _answers(js: JetStreamContext) -> bool:
    try:
        await js.account_info()
    except (nats.errors.Error, TimeoutError):
        return False
    return True


@dataclass(frozen=True)
class _HostServers:
    """The servers as one host is told of them."""

    nats_url: str
    redis_url: str


def host(root: Path, cluster: Cluster, index: int, **settings: str) -> Deployment:
    """Host ``index`` of the fleet: its own data directory under ``root``, the tier on."""
    servers = _HostServers(nats_url=cluster.urls(first=index % NODES), redis_url=cluster.redis_url)
    return Deployment(
        root / f"host-{index}",
        servers,
        L1_BLOB_TIER="on",
        L1_REPLICAS=str(NODES),
        # Long enough for a render to wait out a stream electing its new leader (its
        # events wait as long as its claim lasts), short enough to redeliver quickly.
        L1_ACK_WAIT="10",
        **settings,
    )
