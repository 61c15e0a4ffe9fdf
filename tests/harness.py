"""Running L1's services inside the test's event loop, against real servers.

Each service runs as a task with its own stop event, so a test can stop and start
the API, a worker or the subscribers independently, as a crash or deploy would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import httpx
import msgspec
import uvicorn

from l1.api.app import create_app
from l1.events.main import run_subscribers
from l1.settings import Settings
from l1.stack import free_port
from l1.workers.main import run_worker

__all__ = ["Harness", "Service", "wait_for"]


async def wait_for(
    check: Callable[[], Coroutine[Any, Any, Any]], *, timeout: float = 20.0, interval: float = 0.05
) -> Any:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(interval)


class Service:
    """One running service: a task and the event that stops it."""

    def __init__(self, name: str, run: Callable[[asyncio.Event], Coroutine[Any, Any, None]]):
        self.name = name
        self._run = run
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(self._stop), name=self.name)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stop.set()
        await asyncio.wait_for(self._task, timeout=30)
        self._task = None

    async def crash(self) -> None:
        """Cancel the service without a graceful stop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class Harness:
    """API, worker and subscribers of one L1 deployment, plus an HTTP client to it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = msgspec.structs.replace(settings, port=free_port())
        self.base_url = f"http://127.0.0.1:{self.settings.port}"
        self.api = Service("api", self._serve_api)
        self.worker = Service("worker", self._work)
        self.subscribers = Service("subscribers", self._subscribe)
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=30)

    async def _serve_api(self, stop: asyncio.Event) -> None:
        app = create_app(self.settings, subscribers=False)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.settings.port, log_level="warning")
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        serving = asyncio.create_task(server.serve())
        await stop.wait()
        server.should_exit = True
        await serving

    async def _work(self, stop: asyncio.Event) -> None:
        await run_worker(self.settings, concurrency=4, stop=stop)

    async def _subscribe(self, stop: asyncio.Event) -> None:
        await run_subscribers(self.settings, stop=stop)

    async def start(self) -> None:
        self.subscribers.start()
        self.worker.start()
        await self.start_api()

    async def start_api(self) -> None:
        self.api.start()

        async def answers() -> bool:
            try:
                return (await self.http.get("/")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_for(answers)

    async def stop(self) -> None:
        for service in (self.api, self.worker, self.subscribers):
            await service.stop()
        await self.http.aclose()

    async def finished_run(self, run_id: str, *, timeout: float = 30) -> dict[str, Any]:
        """The run once it has finished."""
        response = await self.http.get(f"/runs/{run_id}", params={"wait": timeout})
        response.raise_for_status()
        run = response.json()
        assert run["status"] in {"completed", "failed"}, run
        return run

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Harness]:
        await self.start()
        try:
            yield self
        finally:
            await self.stop()
