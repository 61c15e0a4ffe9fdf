"""Running L1's services inside the test's event loop, against real servers.

Each service runs as a task with its own stop event, so a test can stop and start
the API, a worker or the subscribers independently, as a crash or deploy would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import httpx
import msgspec
import nats
import uvicorn
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from l1.api.app import create_app
from l1.api.server import server_config
from l1.events.transient import patiently
from l1.settings import Settings
from l1.stack import free_port
from l1.wiring import run_subscribers, run_worker

__all__ = ["EventTap", "Harness", "Service", "asset_hashes", "submit", "upload", "wait_for"]


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

    def __init__(self, settings: Settings, **server_options: Any) -> None:
        port = free_port()
        self._server_options = server_options
        self.base_url = f"http://127.0.0.1:{port}"
        self.settings = msgspec.structs.replace(settings, port=port, public_url=self.base_url)
        self.api = Service("api", self._serve_api)
        self.worker = Service("worker", self._work)
        self.subscribers = Service("subscribers", self._subscribe)
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=30)

    async def _serve_api(self, stop: asyncio.Event) -> None:
        app = create_app(self.settings, subscribers=False)
        # With the access log, so that tests see what a request leaves in the logs.
        config = server_config(
            app, self.settings, log_level="warning", access_log=True, **self._server_options
        )
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
        # Each service waits out its own poll interval, so stop them side by side.
        services = (self.api, self.worker, self.subscribers)
        outcomes = await asyncio.gather(*(s.stop() for s in services), return_exceptions=True)
        await self.http.aclose()
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

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


class EventTap:
    """Every message on ``subject`` in a stream, from the stream's first, as it arrives.

    An ordered push consumer with deliver policy ``all``: what it has received is
    always a prefix of the stream, in stream order.
    """

    def __init__(self, nats_url: str, subject: str, *, stream: str = "L1_EVENTS") -> None:
        self.nats_url = nats_url
        self.subject = subject
        self.stream = stream
        self.messages: list[Msg] = []
        self._nc: NATS | None = None

    async def __aenter__(self) -> EventTap:
        self._nc = await nats.connect(self.nats_url)
        js = self._nc.jetstream()
        # A cluster that just lost a server may still be electing the stream's leader.
        await patiently(
            lambda: js.subscribe(
                self.subject,
                stream=self.stream,
                cb=self._received,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.ALL,
            ),
            within=60,
            what="tapping the events",
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._nc is not None:
            await self._nc.close()

    async def _received(self, msg: Msg) -> None:
        self.messages.append(msg)

    @property
    def events(self) -> list[dict[str, Any]]:
        """The payloads received so far, decoded."""
        return [json.loads(msg.data) for msg in self.messages]

    async def until(
        self, condition: Callable[[list[dict[str, Any]]], bool], *, timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        """The payloads once ``condition`` holds for them."""

        async def check() -> list[dict[str, Any]] | None:
            events = self.events
            return events if condition(events) else None

        return await wait_for(check, timeout=timeout)

    async def settled(self, *, timeout: float = 20.0) -> list[dict[str, Any]]:
        """The payloads once every message the stream now holds on the subject arrived."""
        assert self._nc is not None, "use the tap as an async context manager"
        info = await self._nc.jetstream().stream_info(self.stream, subjects_filter=self.subject)
        stored = sum((info.state.subjects or {}).values())
        return await self.until(lambda events: len(events) >= stored, timeout=timeout)


async def asset_hashes(http: httpx.AsyncClient) -> dict[str, str]:
    """The content hash of every named asset, by name."""
    response = await http.get("/assets")
    response.raise_for_status()
    return {asset["name"]: asset["content_hash"] for asset in response.json()["items"]}


async def upload(http: httpx.AsyncClient, data: bytes) -> str:
    """Upload ``data`` raw and return its content hash."""
    response = await http.post("/cache", content=data)
    assert response.status_code in {200, 201}, response.text
    return str(response.json()["content_hash"])


async def submit(
    http: httpx.AsyncClient, recipe: str, inputs: list[str], **extra: Any
) -> dict[str, Any]:
    """``POST /runs``; the run as the server answered (202, or 200 once finished)."""
    response = await http.post("/runs", json={"recipe": recipe, "inputs": inputs, **extra})
    assert response.status_code in {200, 202}, response.text
    return dict(response.json())
