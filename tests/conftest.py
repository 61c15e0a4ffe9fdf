"""Fixtures: real ``nats-server`` and Redis-compatible servers, started once per session
on free ports (or the ones named by ``L1_NATS_URL`` / ``L1_REDIS_URL``), and a fresh
L1 deployment per test."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.js.errors import NotFoundError
from redis.asyncio import Redis

from l1.events.streams import stream_configs
from l1.settings import Settings
from l1.stack import ServerProcess, free_port, nats_server, redis_server
from l1.workers.heartbeat import BUCKET as HEARTBEATS
from tests.harness import Harness
from tests.l2_server import FakeL2
from tests.processes import Deployment, OwnServers


class Servers:
    """The NATS and Redis servers the tests talk to."""

    def __init__(self, tmp: Path) -> None:
        self.nats: ServerProcess | None = None
        self.redis: ServerProcess | None = None
        self.nats_url = os.environ.get("L1_NATS_URL")
        self.redis_url = os.environ.get("L1_REDIS_URL")
        if not self.nats_url:
            self.nats = nats_server(
                port=free_port(), store_dir=tmp / "nats", log_path=tmp / "nats.log"
            )
            self.nats_url = f"nats://127.0.0.1:{self.nats.port}"
        if not self.redis_url:
            self.redis = redis_server(
                port=free_port(), data_dir=tmp / "redis", log_path=tmp / "redis.log"
            )
            self.redis_url = f"redis://127.0.0.1:{self.redis.port}/5"

    def start(self) -> None:
        for server in (self.nats, self.redis):
            if server is not None:
                server.start()

    def stop(self) -> None:
        for server in (self.nats, self.redis):
            if server is not None:
                server.stop()


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    running = Servers(tmp_path_factory.mktemp("servers"))
    running.start()
    yield running
    running.stop()


async def _reset(servers: Servers) -> None:
    """Empty L1's streams and Redis database, so each test starts from nothing."""
    nc = await nats.connect(servers.nats_url)
    try:
        js = nc.jetstream()
        for config in stream_configs():
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(config.name)
        with contextlib.suppress(NotFoundError):  # workers' heartbeats
            await js.delete_key_value(HEARTBEATS)
    finally:
        await nc.close()
    redis = Redis.from_url(servers.redis_url)
    try:
        await redis.flushdb()
    finally:
        await redis.aclose()


@pytest.fixture
async def settings(servers: Servers, tmp_path: Path) -> Settings:
    await _reset(servers)
    imports = tmp_path / "imports"
    imports.mkdir()
    return Settings.from_env(
        {
            "L1_DATA_DIR": str(tmp_path / "data"),
            "L1_NATS_URL": servers.nats_url,
            "L1_REDIS_URL": servers.redis_url,
            "L1_IMPORT_ROOTS": str(imports),
            "L1_ACTOR": "@tester@l1.test",
        }
    )


@pytest.fixture
async def l1(settings: Settings) -> AsyncIterator[Harness]:
    async with Harness(settings).running() as harness:
        yield harness


@pytest.fixture
async def l2() -> AsyncIterator[FakeL2]:
    """A stand-in for L2 over real HTTP (``L1_L2_URL``)."""
    server = FakeL2()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def own(tmp_path: Path) -> AsyncIterator[OwnServers]:
    """NATS and Redis for this test alone."""
    servers = OwnServers(tmp_path / "servers")
    await servers.start()
    try:
        yield servers
    finally:
        await servers.stop()


@pytest.fixture
async def deployment(tmp_path: Path, own: OwnServers) -> AsyncIterator[Deployment]:
    """The test's L1 processes; their logs are printed when it ends (shown on failure)."""
    deployed = Deployment(tmp_path / "l1", own)
    try:
        yield deployed
    finally:
        await deployed.close()
        print(deployed.logs())
