"""``l1 up``: the whole system on one machine under one data directory.

Starts ``nats-server`` and a Redis-compatible server (unless ``L1_NATS_URL`` and
``L1_REDIS_URL`` name running ones), then the API, the event subscribers and the
workers as child processes, and stops all of it, newest first, when told to.

Nothing it starts outlives it: on Linux each child is sent SIGTERM by the kernel when
``l1 up`` dies, even by ``kill -9``; and ``$L1_DATA_DIR/up.json`` names every process,
so that the next ``l1 up`` on the same directory stops any left behind (see
:mod:`l1.leftovers`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from l1.leftovers import StateFile, UpState, alive, port_holder, recorded, stop_all
from l1.settings import Settings
from l1.stack import (
    ServerProcess,
    StackError,
    die_with_parent,
    nats_server,
    port_open,
    redis_server,
)

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
    api_processes: int = 1
    servers: list[ServerProcess] = field(default_factory=list)
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what start did that a person should know

    @property
    def settings(self) -> Settings:
        """The settings every service of the deployment reads."""
        return Settings.from_env(self.env)

    @property
    def logs(self) -> Path:
        """Where every process writes its log."""
        return self.settings.data_dir / "logs"

    @property
    def state(self) -> StateFile:
        """The data directory's record of the running processes."""
        return StateFile(self.settings.data_dir)

    def start(self) -> Settings:
        """Start everything; returns the settings the services were started with.

        :class:`StackError` saying what to do if another ``l1 up`` runs on the same
        data directory or a port is taken.
        """
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._settle_leftovers()
        self._check_ports()
        self._record()
        self._start_servers()
        # Separate processes, so that the API, the subscribers and the renders share
        # the machine's cores instead of one event loop.
        self._spawn("api", ["api", "--no-subscribers", "--processes", str(self.api_processes)])
        # Each process that serves its own metrics needs a port of its own: the
        # subscribers take L1_METRICS_PORT, worker n the n-th one after it.
        metrics = self.settings.metrics_port
        self._spawn("events", ["events"], metrics_port=metrics)
        for index in range(self.workers):
            name = "worker" if self.workers == 1 else f"worker-{index + 1}"
            port = metrics + 1 + index if metrics else 0
            self._spawn(name, ["worker", "--concurrency", str(self.concurrency)], metrics_port=port)
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
                child.wait()
        for server in reversed(self.servers):
            server.stop()
        state = self.state.read()
        if state is not None and state.up.pid == os.getpid():
            self.state.remove()

    def _settle_leftovers(self) -> None:
        state = self.state.read()
        if state is None:
            return
        data_dir = self.settings.data_dir
        if alive(state.up):
            pid = state.up.pid
            raise StackError(
                f"`l1 up` is already running on {data_dir} (pid {pid}); stop it with "
                f"Ctrl-C in its terminal or `kill {pid}`, or start this one with "
                "another --data-dir"
            )
        if stopped := stop_all(state.processes):
            names = ", ".join(f"{p.name} (pid {p.pid})" for p in stopped)
            self.notes.append(f"stopped what an earlier `l1 up` left running: {names}")
        self.state.remove()

    def _check_ports(self) -> None:
        settings = self.settings
        wanted = [("the API", settings.port, "--port", "or set L1_PORT")]
        if settings.nats_url is None:
            already = "or set L1_NATS_URL to use a NATS server that is already running"
            wanted.append(("nats-server", self.nats_port, "--nats-port", already))
        if settings.redis_url is None:
            already = "or set L1_REDIS_URL to use a Redis server that is already running"
            wanted.append(("redis", self.redis_port, "--redis-port", already))
        for what, port, flag, otherwise in wanted:
            if port_open(port):
                holder = port_holder(port)
                stop = f"stop it (`kill {holder[0]}`)" if holder else "stop what holds it"
                held = f" by pid {holder[0]} ({holder[1]})" if holder else ""
                raise StackError(
                    f"{what}: port {port} is already in use{held}; {stop}, or choose "
                    f"another port: `l1 up {flag} N` ({otherwise})"
                )

    def _record(self) -> None:
        processes = [recorded(s.name, s.pid) for s in self.servers if s.pid is not None]
        processes += [recorded(name, child.pid) for name, child in self.children.items()]
        up = recorded("l1 up", os.getpid())
        self.state.write(UpState(up=up, processes=processes))

    def _start_servers(self) -> None:
        settings = self.settings
        if settings.nats_url is None:
            nats = nats_server(
                port=self.nats_port,
                store_dir=settings.data_dir / "nats",
                log_path=self.logs / "nats.log",
                tied=True,
            )
            self.servers.append(nats)
            nats.start()
            self._record()
            self.env["L1_NATS_URL"] = f"nats://127.0.0.1:{nats.port}"
        if settings.redis_url is None:
            redis = redis_server(
                port=self.redis_port,
                data_dir=settings.data_dir / "redis",
                log_path=self.logs / "redis.log",
                tied=True,
            )
            self.servers.append(redis)
            redis.start()
            self._record()
            self.env["L1_REDIS_URL"] = f"redis://127.0.0.1:{redis.port}/5"

    def _spawn(self, name: str, args: list[str], *, metrics_port: int = 0) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        env = {**self.env, "L1_METRICS_PORT": str(metrics_port)}
        with (self.logs / f"{name}.log").open("ab") as log:
            self.children[name] = subprocess.Popen(
                [sys.executable, "-m", "l1", *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
                preexec_fn=die_with_parent(),
            )
        self._record()

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
