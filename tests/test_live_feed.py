"""The dashboard's live feed (``/ui/events``) and ``/metrics`` stay bounded in what they
cost, whatever clients do: catch-ups are recent and go to the page that asked, pages
that fall behind are closed, connections are capped, labels do not grow."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import msgspec
import nats
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from l1.api import live, metrics
from l1.api.live import QUEUE_SIZE, LivePage, RunFeed
from l1.api.run_waiter import RunWaiter
from l1.events import subjects
from l1.events.schemas import RunProgress
from l1.runs.store import RunStore
from l1.settings import Settings
from l1.timestamps import utc_now
from tests.harness import Harness, submit, upload, wait_for


class Page:
    """A page listening on ``/ui/events``: every update it received, in order."""

    def __init__(self, base_url: str, *, address: str | None = None) -> None:
        # uvicorn takes the client's address from X-Forwarded-For when the peer is local.
        headers = {"X-Forwarded-For": address} if address else {}
        self._client = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30)
        self.updates: list[dict[str, Any]] = []
        self.ended = False
        self._stack = contextlib.AsyncExitStack()
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Page:
        await self._stack.enter_async_context(self._client)
        response = await self._stack.enter_async_context(self._client.stream("GET", "/ui/events"))
        assert response.status_code == 200, await response.aread()
        lines = response.aiter_lines()
        while not (await anext(lines)).startswith(": listening"):
            pass
        self._reader = asyncio.create_task(self._read(lines))
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop listening (again is harmless)."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._stack.aclose()

    async def _read(self, lines: AsyncIterator[str]) -> None:
        event = ""
        async for line in lines:
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == "run":  # comments carry none
                self.updates.append(json.loads(line.removeprefix("data: ")))
            elif not line:
                event = ""
        self.ended = True

    async def until(self, run_id: str, status: str = "completed") -> int:
        """How many updates came before ``run_id`` showed ``status`` (the first time)."""

        async def shown() -> int | None:
            for index, update in enumerate(self.updates):
                if update["run_id"] == run_id and update["status"] == status:
                    return index + 1
            return None

        return int(await wait_for(shown))


async def _burst(l1: Harness, runs: int) -> list[str]:
    """``runs`` identity runs over fresh inputs, finished; their ids."""
    inputs = [await upload(l1.http, os.urandom(1024)) for _ in range(runs)]
    ids = [(await submit(l1.http, "identity", [item]))["run_id"] for item in inputs]
    for run_id in ids:
        assert (await l1.finished_run(run_id))["status"] == "completed"
    return ids


async def test_a_page_opened_after_a_burst_is_sent_no_stale_updates(
    l1: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "RECENT", 0.5)  # a window the test can outwait
    burst = set(await _burst(l1, 8))
    loop = asyncio.get_running_loop()
    finished = loop.time()

    async def window_passed() -> bool:  # time itself is what is waited for
        return loop.time() > finished + 1.0

    await wait_for(window_passed)
    async with Page(l1.base_url) as page:
        marker = (await _burst(l1, 1))[0]
        before = await page.until(marker)
        stale = [u for u in page.updates[:before] if u["run_id"] in burst]
        assert stale == []


async def test_a_catch_up_goes_to_the_new_page_alone(
    l1: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "RECENT", 60.0)  # however slowly the burst goes
    async with Page(l1.base_url) as first:
        burst = await _burst(l1, 6)
        for run_id in burst:
            await first.until(run_id)
        seen_by_first = len(first.updates)
        async with Page(l1.base_url) as second:
            # The newcomer catches up on the runs that just finished...
            for run_id in burst:
                await second.until(run_id)
            marker = (await _burst(l1, 1))[0]
            upto = await first.until(marker)
            # ...and the page that saw them live is not sent them again.
            again = [u["run_id"] for u in first.updates[seen_by_first:upto]]
            assert set(again) == {marker}


@contextlib.asynccontextmanager
async def _feed(settings: Settings) -> AsyncIterator[tuple[RunFeed, nats.NATS, list[str]]]:
    """A run feed on the real servers, subscribed; every run id its listener saw."""
    nc = await nats.connect(str(settings.nats_url))
    redis = Redis.from_url(str(settings.redis_url))
    runs = RunStore(redis)
    heard: list[str] = []
    feed = RunFeed(nc, runs=runs, waiter=RunWaiter(redis, runs), listeners=[_hear(heard)])
    stop = asyncio.Event()
    running = asyncio.create_task(feed.run(stop))
    try:

        async def subscribed() -> bool:
            await _publish(nc, "f" * 64)
            return "f" * 64 in heard

        await wait_for(subscribed)
        yield feed, nc, heard
    finally:
        stop.set()
        await running
        await nc.close()
        await redis.aclose()


def _hear(heard: list[str]) -> Any:
    return lambda event: heard.append(event.run_id)


async def _publish(nc: nats.NATS, run_id: str) -> None:
    event = RunProgress(event_id=f"{run_id}.p", at=utc_now(), run_id=run_id, percent=50.0)
    await nc.publish(subjects.run_event(run_id, "progress"), msgspec.json.encode(event))
    await nc.flush()


def _run_ids(count: int) -> Iterator[str]:
    return (f"{index:064x}" for index in range(1, count + 1))


async def test_a_page_that_falls_behind_is_closed_and_one_that_keeps_up_is_not(
    settings: Settings,
) -> None:
    async with _feed(settings) as (feed, nc, _):
        received: list[str] = []

        async def keep_up(page: LivePage) -> None:
            while (update := await page.next(30)) is not None:
                received.append(update.run_id)

        with feed.updates() as slow, feed.updates() as quick:
            reading = asyncio.create_task(keep_up(quick))
            sent = list(_run_ids(QUEUE_SIZE + 20))
            for run_id in sent:
                await _publish(nc, run_id)

            async def all_read() -> bool:
                return set(sent) <= set(received)

            await wait_for(all_read)
            assert slow.closed and not quick.closed
            # What it had queued is dropped: the page is told to go, at once.
            assert await slow.next(1) is None
            reading.cancel()


async def test_live_connections_are_capped_per_address_and_in_total(settings: Settings) -> None:
    capped = msgspec.structs.replace(settings, feed_max_clients=3, feed_max_per_address=2)
    async with Harness(capped).running() as l1, contextlib.AsyncExitStack() as pages:
        first = await pages.enter_async_context(Page(l1.base_url, address="10.0.0.1"))
        await pages.enter_async_context(Page(l1.base_url, address="10.0.0.1"))
        over = await l1.http.get("/ui/events", headers={"X-Forwarded-For": "10.0.0.1"})
        assert over.status_code == 429
        assert int(over.headers["retry-after"]) > 0
        assert "10.0.0.1 already has 2 live pages" in over.json()["detail"]

        await pages.enter_async_context(Page(l1.base_url, address="10.0.0.2"))
        full = await l1.http.get("/ui/events", headers={"X-Forwarded-For": "10.0.0.3"})
        assert full.status_code == 429
        assert full.json() == {
            "status_code": 429,
            "detail": "the server already serves 3 live pages; try again later",
        }

        await first.close()  # a page closes: its place is free again

        async def admitted() -> bool:
            async with l1.http.stream(
                "GET", "/ui/events", headers={"X-Forwarded-For": "10.0.0.3"}
            ) as response:
                return response.status_code == 200

        await wait_for(admitted)


GROWING = """
name: growing-{index}
inputs: [{{name: picture}}]
nodes:
  - {{id: src, type: SOURCE, config: {{input: picture}}}}
  - {{id: small, type: RESIZE, config: {{width: {width}, height: 8, mode: stretch}}, inputs: [src]}}
output: small
"""


def _recipe_labels(text: str) -> set[str]:
    return {
        sample.labels["recipe"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "l1_run_seconds_count"
    }


async def test_run_duration_labels_stay_bounded_however_many_recipes_run(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "LABELLED_RECIPES", 3)
    async with Harness(settings).running() as l1:
        names = []
        for index in range(6):
            document = GROWING.format(index=index, width=8 + index)
            response = await l1.http.post("/recipes", content=document.encode())
            assert response.status_code == 201, response.text
            names.append(f"growing-{index}")
        for name in [*names, "invert"]:
            run = await submit(l1.http, name, ["cat"])
            assert (await l1.finished_run(run["run_id"]))["status"] == "completed"

        # The first three recipes, the effect, and the rest as one.
        expected = {*names[:3], "invert", "other"}

        async def counted() -> set[str] | None:
            labels = _recipe_labels((await l1.http.get("/metrics")).text)
            return labels if labels >= expected else None

        assert await wait_for(counted) == expected


def test_recipe_labels_keep_effects_and_the_first_recipes() -> None:
    labels = metrics.RecipeLabels(["sepia"], at_most=2)
    assert [labels.of(name) for name in ("a", "b", "c", "sepia", "a", "d")] == [
        "a",
        "b",
        "other",
        "sepia",
        "a",
        "other",
    ]
