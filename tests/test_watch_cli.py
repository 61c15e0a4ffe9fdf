"""``l1 workers`` and ``l1 top`` against a running deployment."""

from __future__ import annotations

import json

from tests.harness import Harness, submit
from tests.test_cli import l1_cli, succeeded


async def test_workers_lists_each_live_worker(l1: Harness) -> None:
    listed = json.loads(succeeded(await l1_cli(l1.base_url, "workers", "--json")))
    assert len(listed) == 1
    worker = listed[0]
    assert worker["concurrency"] == 4 and worker["rendering"] == []
    lines = succeeded(await l1_cli(l1.base_url, "workers")).splitlines()
    assert len(lines) == 1
    assert lines[0].split("\t")[0] == worker["worker"]
    assert lines[0].split("\t")[3] == "idle"
    await l1.worker.stop()
    assert json.loads(succeeded(await l1_cli(l1.base_url, "workers", "--json"))) == []


async def test_top_shows_queues_workers_and_runs(l1: Harness) -> None:
    run = await submit(l1.http, "invert", ["cat"])
    await l1.finished_run(run["run_id"])
    screen = succeeded(await l1_cli(l1.base_url, "top", "--once"))
    for expected in ("queues", "workers", "latest runs", "run-projector", run["run_id"][:12]):
        assert expected in screen, expected
    assert "completed" in screen
