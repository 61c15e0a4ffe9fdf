"""L1's services as real child processes, against servers of the test's own.

``python -m l1 api`` and ``python -m l1 worker`` run with their settings in ``L1_*``
variables, each writing its output to a log file, so that a test can kill them with
real signals and restart the servers under them. Everything started here is stopped
by :meth:`Deployment.close`, whatever the test did.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Protocol

import httpx
import msgspec
import nats
from nats.js.errors import NotFoundError

from l1.settings import Settings
from l1.stack import ServerProcess, free_port, nats_server, redis_server
from tests.harness import wait_for

__all__ = [
    "EFFECTS",
    "FAST",
    "ChildProcess",
    "Deployment",
    "OwnServers",
    "render_queue_empty",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
EFFECTS = "tests.effect_fixtures:effects"


def with_test_effects(settings: Settings, *, max_deliver: int) -> Settings:
    """``settings`` with the test-only effects and retries quick enough for a test."""
    return msgspec.structs.replace(
        settings, effect_modules=(EFFECTS,), ack_wait=2.0, max_deliver=max_deliver, retry_delay=0.2
    )


# Short timings, so that redelivery, retries and reconciliation happen within seconds.
FAST = {
    "L1_ACK_WAIT": "2",
    "L1_MAX_DELIVER": "3",
    "L1_RETRY_DELAY": "0.2",
    "L1_RECONCILE_EVERY": "1",
    "L1_STALE_AFTER": "2",
    "L1_EFFECT_MODULES": EFFECTS,
}


class OwnServers:
    """A ``nats-server`` and a Redis-compatible server for one test, on free ports,
    their data under ``root`` so that a restart finds it again."""

    def __init__(self, root: Path) -> None:
        logs = root / "logs"
        self.nats: ServerProcess = nats_server(
            port=free_port(), store_dir=root / "nats", log_path=logs / "nats.log"
        )
        self.redis: ServerProcess = redis_server(
            port=free_port(), data_dir=root / "redis", log_path=logs / "redis.log", persist=True
        )

    @property
    def nats_url(self) -> str:
        """Where NATS listens."""
        return f"nats://127.0.0.1:{self.nats.port}"

    @property
    def redis_url(self) -> str:
        """Where Redis listens (L1's default database, 5)."""
        return f"redis://127.0.0.1:{self.redis.port}/5"

    async def start(self) -> None:
        """Start both servers (off the event loop: starting polls with sleeps)."""
        await asyncio.to_thread(self.nats.start)
        await asyncio.to_thread(self.redis.start)

    async def stop(self) -> None:
        """Stop both servers, if they are running."""
        await asyncio.to_thread(self.nats.stop)
        await asyncio.to_thread(self.redis.stop)


class Servers(Protocol):
    """Where a deployment finds NATS and Redis."""

    @property
    def nats_url(self) -> str: ...

    @property
    def redis_url(self) -> str: ...


class ChildProcess:
    """One ``python -m l1 ...`` child process, its output in ``log_path``."""

    def __init__(self, name: str, args: list[str], *, env: dict[str, str], log_path: Path):
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> ChildProcess:
        """Start the process (from the repository root, so ``tests`` is importable)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "l1", *self.args],
                env=self.env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        """The process id."""
        assert self._process is not None, f"{self.name} was never started"
        return self._process.pid

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status once it has exited (negative: killed by that signal)."""
        return None if self._process is None else self._process.poll()

    def send(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the process, if it still runs."""
        if self.alive:
            assert self._process is not None
            self._process.send_signal(sig)

    async def exited(self, *, timeout: float) -> int | None:
        """The exit status once the process has exited, or None after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.alive and loop.time() < deadline:
            await asyncio.sleep(0.05)
        return self.returncode

    async def kill(self) -> int:
        """SIGKILL, as a crash or the OOM killer would, and reap the process."""
        self.send(signal.SIGKILL)
        status = await self.exited(timeout=10)
        assert status is not None, f"{self.name} survived SIGKILL"
        return status

    async def stop(self, *, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it is still there after ``grace`` seconds."""
        self.send(signal.SIGTERM)
        if await self.exited(timeout=grace) is None:
            await self.kill()

    def log(self) -> str:
        """Everything the process wrote so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class Deployment:
    """The L1 processes of one test: an API and workers sharing one data directory
    and one set of ``L1_*`` settings, talking to ``servers``."""

    def __init__(self, root: Path, servers: Servers, **settings: str) -> None:
        self.root = root
        self.servers = servers
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = _clean_environment()
        self.env.update(
            {
                "PYTHONPATH": str(REPO_ROOT),
                "PYTHONUNBUFFERED": "1",
                "L1_DATA_DIR": str(root / "data"),
                "L1_NATS_URL": servers.nats_url,
                "L1_REDIS_URL": servers.redis_url,
                "L1_HOST": "127.0.0.1",
                "L1_PORT": str(self.port),
                "L1_ACTOR": "@faults@l1.test",
                **FAST,
                **settings,
            }
        )
        self.children: list[ChildProcess] = []
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=30)

    def _child(self, name: str, args: list[str]) -> ChildProcess:
        log_path = self.root / "logs" / f"{name}.log"
        child = ChildProcess(name, args, env=self.env, log_path=log_path)
        self.children.append(child)
        return child

    async def start_api(self, name: str = "api", *, timeout: float = 30.0) -> ChildProcess:
        """Start the API (with the subscribers and reconciler) and wait until it is
        ready: ``GET /health`` answers 200."""
        api = self._child(name, ["api"]).start()

        async def ready() -> bool:
            if not api.alive:
                raise AssertionError(f"{name} exited at start:\n{api.log()[-3000:]}")
            try:
                return (await self.http.get("/health")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_for(ready, timeout=timeout, interval=0.1)
        return api

    def start_worker(self, name: str = "worker", *, concurrency: int = 2) -> ChildProcess:
        """Start a worker with ``concurrency`` render slots."""
        return self._child(name, ["worker", "--concurrency", str(concurrency)]).start()

    def cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run ``python -m l1 --server <api> ARGS`` and return what it printed."""
        env = {**self.env, "COLUMNS": "400"}
        return subprocess.run(
            [sys.executable, "-m", "l1", "--server", self.base_url, *args],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    async def close(self) -> None:
        """Stop every child still running, then the HTTP client."""
        await asyncio.gather(*(child.stop(grace=3.0) for child in self.children))
        await self.http.aclose()

    def logs(self, lines: int = 60) -> str:
        """The last ``lines`` lines of each child's log, for a failure report."""
        parts = []
        for child in self.children:
            tail = "\n".join(child.log().splitlines()[-lines:])
            parts.append(f"----- {child.name} (exit {child.returncode}) -----\n{tail}")
        return "\n".join(parts)

    # HTTP helpers ------------------------------------------------------------------

    async def upload(self, data: bytes) -> str:
        """Upload ``data`` and return its content hash."""
        response = await self.http.post("/cache", content=data)
        assert response.status_code in (200, 201), response.text
        return str(response.json()["content_hash"])

    async def submit(self, recipe: str, inputs: list[str]) -> dict[str, Any]:
        """``POST /runs``; the run as accepted."""
        response = await self.http.post("/runs", json={"recipe": recipe, "inputs": inputs})
        assert response.status_code in (200, 202), response.text
        return dict(response.json())

    async def run(self, run_id: str) -> dict[str, Any]:
        """``GET /runs/{run_id}`` as it reads now."""
        response = await self.http.get(f"/runs/{run_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def finished(self, run_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
        """The run once it reads completed, failed or cancelled."""

        async def done() -> dict[str, Any] | None:
            try:
                response = await self.http.get(f"/runs/{run_id}", params={"wait": 1})
            except httpx.TransportError:
                return None
            if response.status_code != 200:
                return None
            run = dict(response.json())
            return run if run["status"] in ("completed", "failed", "cancelled") else None

        return dict(await wait_for(done, timeout=timeout, interval=0.1))


async def render_queue_empty(nats_url: str) -> bool:
    """True when the render stream holds no request (every one was acked or ended)."""
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info("L1_RENDER")
    except NotFoundError:
        return True
    finally:
        await nc.close()
    return info.state.messages == 0


def _clean_environment() -> dict[str, str]:
    """This process's environment without any ``L1_*`` setting of the developer's."""
    return {k: v for k, v in os.environ.items() if not k.startswith("L1_")}
