"""A real HTTP server playing L2 in the tests.

It answers ``GET /objects/{hash}`` and ``POST /registry/record-run`` as L2 does, and
can be told to answer published, not published, slowly, with errors or nonsense, or
to be down altogether. Publishing calls back into L1 for the run, as L2 does.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import httpx
import uvicorn
from litestar import Litestar, MediaType, Response, get, post
from litestar.params import FromPath, JSONBody

from l1.stack import free_port
from tests.harness import wait_for

__all__ = ["FakeL2"]

Mode = Literal["normal", "slow", "error", "nonsense"]


class FakeL2:
    """L2 on a free port, with switches for how it misbehaves."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.published: set[str] = set()
        self.mode: Mode = "normal"
        self.delay = 0.0
        self.callbacks: list[dict[str, Any]] = []
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        app = Litestar([self._objects(), self._record_run()])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._task = asyncio.create_task(self._server.serve())
        server = self._server

        async def started() -> bool:
            return server.started

        await wait_for(started)

    async def stop(self) -> None:
        """Go down: connections are refused from now on."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None

    async def _misbehave(self) -> Response[Any] | None:
        if self.mode == "slow":
            await asyncio.sleep(self.delay)  # plays a slow L2; nothing waits on it
        if self.mode == "error":
            return Response({"detail": "boom"}, status_code=500)
        if self.mode == "nonsense":
            return Response("<html>not json</html>", status_code=200, media_type=MediaType.HTML)
        return None

    def _objects(self):  # type: ignore[no-untyped-def]
        @get("/objects/{content_hash:str}")
        async def objects(content_hash: FromPath[str]) -> Response[Any]:
            if (odd := await self._misbehave()) is not None:
                return odd
            if content_hash in self.published:
                return Response({"content_hash": content_hash, "published": True})
            return Response({"detail": "not published"}, status_code=404)

        return objects

    def _record_run(self):  # type: ignore[no-untyped-def]
        @post("/registry/record-run")
        async def record_run(data: JSONBody[dict[str, Any]]) -> Response[Any]:
            if (odd := await self._misbehave()) is not None:
                return odd
            async with httpx.AsyncClient(timeout=10) as client:
                answer = await client.get(f"{data['l1_server']}/runs/{data['run_id']}")
            if answer.status_code != 200:
                return Response({"detail": f"L1 said {answer.status_code}"}, status_code=400)
            run = answer.json()
            self.callbacks.append(run)
            self.published.update(i["content_hash"] for i in run["inputs"])
            self.published.add(run["output_hash"])
            return Response({"activity": f"{self.url}/activities/{run['run_id']}"}, status_code=201)

        return record_run
