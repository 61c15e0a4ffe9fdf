"""``l1 up``: the whole system on one machine under one data directory.

Starts ``nats-server`` and a Redis-compatible server (unless ``L1_NATS_URL`` and
``L1_REDIS_URL`` name running ones), then the API and one worker as child processes,
and stops all of it, newest first, when told to.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from l1.settings import Settings
from l1.stack import ServerProcess, StackError, nats_server, redis_server

__all__ = ["Deployment"]


@dataclass
class Deployment:
    """The processes of one machine's L1, started and stopped together.

    ``env`` is the environment the services run with (``L1_*`` variables included).
    """

    env: dict[str, str]
    nats_port: int = 4223
    redis_port: int = 6380
    workers: int = 1
    concurrency: int = 4
    servers: list[ServerProcess] = field(default_factory=list)
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        """The settings every service of the deployment reads."""
        return Settings.from_env(self.env)

    @property
    def logs(self) -> Path:
        """Where every process writes its log."""
        return self.settings.data_dir / "logs"

    def start(self) -> Settings:
        """Start everything; returns the settings the services were started with."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._start_servers()
        # Separate processes, so that the API, the subscribers and the renders share
        # the machine's cores instead of one event loop.
        self._spawn("api", ["api", "--no-subscribers"])
        self._spawn("events", ["events"])
        for index in range(self.workers):
            name = "worker" if self.workers == 1 else f"worker-{index + 1}"
            self._spawn(name, ["worker", "--concurrency", str(self.concurrency)])
        self._wait_for_api()
        return self.settings

    def wait(self, stop: threading.Event) -> str | None:
        """Block until ``stop`` is set or a child exits; returns the name of one that died."""
        while not stop.wait(0.5):
            if (name := self.dead()) is not None:
                return name
        return None

    def dead(self) -> str | None:
        """The name of a service that has exited, if any."""
        return next((n for n, c in self.children.items() if c.poll() is not None), None)

    def stop(self) -> None:
        """Stop the services, then the servers, each with a grace period."""
        for child in reversed(self.children.values()):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in reversed(self.children.values()):
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
        for server in reversed(self.servers):
            server.stop()

    def _start_servers(self) -> None:
        settings = self.settings
        if settings.nats_url is None:
            nats = nats_server(
                port=self.nats_port,
                store_dir=settings.data_dir / "nats",
                log_path=self.logs / "nats.log",
            )
            nats.start()
            self.servers.append(nats)
            self.env["L1_NATS_URL"] = f"nats://127.0.0.1:{nats.port}"
        if settings.redis_url is None:
            redis = redis_server(
                port=self.redis_port,
                data_dir=settings.data_dir / "redis",
                log_path=self.logs / "redis.log",
            )
            redis.start()
            self.servers.append(redis)
            self.env["L1_REDIS_URL"] = f"redis://127.0.0.1:{redis.port}/5"

    def _spawn(self, name: str, args: list[str]) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{name}.log").open("ab") as log:
            self.children[name] = subprocess.Popen(
                [sys.executable, "-m", "l1", *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
            )

    def _wait_for_api(self, timeout: float = 60.0) -> None:
        settings = self.settings
        url = f"http://{settings.host}:{settings.port}/"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.children["api"].poll() is not None:
                raise StackError(f"the API exited at start; see {self.logs / 'api.log'}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise StackError(
            f"the API did not answer within {timeout:.0f}s; see {self.logs / 'api.log'}"
        )
