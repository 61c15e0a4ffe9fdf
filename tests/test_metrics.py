"""``GET /metrics`` and the workers' own metrics: Prometheus text whose values move as
runs go through."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from l1.settings import Settings
from l1.stack import free_port
from l1.wiring import run_subscribers
from tests.harness import Harness, submit, wait_for


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample, keyed by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def _scrape(
    http: httpx.AsyncClient, url: str = "/metrics"
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await http.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return _samples(response.text)


class Watched(Harness):
    """A deployment whose worker (on ``L1_METRICS_PORT``) and subscribers (on
    :attr:`subscribers_port`) serve their metrics on ports of their own."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(msgspec.structs.replace(settings, metrics_port=free_port()))
        self.subscribers_port = free_port()

    async def _subscribe(self, stop: asyncio.Event) -> None:
        own = msgspec.structs.replace(self.settings, metrics_port=self.subscribers_port)
        await run_subscribers(own, stop=stop)


@pytest.fixture
async def watched(settings: Settings) -> AsyncIterator[Watched]:
    async with Watched(settings).running() as harness:
        yield harness


async def test_metrics_move_as_runs_complete(watched: Watched) -> None:
    http = watched.http
    before = await _scrape(http)
    submitted = before.get(("l1_runs_submitted_total", ()), 0.0)
    completed_key = ("l1_runs_finished_total", (("status", "completed"),))
    completed = before.get(completed_key, 0.0)
    assert ("l1_workers_live", ()) in before

    runs = [await submit(http, effect, ["cat"]) for effect in ("sepia", "invert")]
    for run in runs:
        assert (await watched.finished_run(run["run_id"]))["status"] == "completed"

    async def moved() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        now = await _scrape(http)
        done = now.get(completed_key, 0.0) >= completed + 2
        return now if done and now[("l1_runs_submitted_total", ())] >= submitted + 2 else None

    after = await wait_for(moved, timeout=15)
    assert after[("l1_runs", (("status", "completed"),))] >= 2
    assert after[("l1_run_seconds_count", (("recipe", "sepia"),))] >= 1
    assert after[("l1_cache_items", ())] >= 2  # the inputs and the outputs
    assert after[("l1_cache_bytes", ())] > 0
    assert after[("l1_workers_live", ())] == 1
    queue = (("consumer", "workers"), ("stream", "L1_RENDER"))
    assert after[("l1_queue_pending", queue)] == 0
    assert ("l1_queue_redelivered", queue) in after
    http_requests = [key for key in after if key[0] == "l1_http_requests_total"]
    assert any(dict(labels).get("path") == "/runs" for _, labels in http_requests)


async def test_workers_and_subscribers_serve_their_own(watched: Watched) -> None:
    run = await submit(watched.http, "grayscale", ["cat"])
    await watched.finished_run(run["run_id"])
    url = f"http://127.0.0.1:{watched.settings.metrics_port}/metrics"
    async with httpx.AsyncClient() as client:
        samples = await _scrape(client, url)
    assert samples[("l1_render_seconds_count", (("effect", "grayscale"),))] == 1
    assert samples[("l1_renders_total", (("effect", "grayscale"), ("outcome", "completed")))] == 1
    assert samples[("l1_worker_rendering", ())] == 0

    subscribers = f"http://127.0.0.1:{watched.subscribers_port}/metrics"

    async def projected() -> bool:
        async with httpx.AsyncClient() as client:
            samples = await _scrape(client, subscribers)
        runs = samples.get(("l1_events_projected_total", (("consumer", "run-projector"),)), 0)
        items = samples.get(("l1_events_projected_total", (("consumer", "cache-projector"),)), 0)
        return runs >= 2 and items >= 1  # submitted and completed; the output stored

    await wait_for(projected, timeout=10)
