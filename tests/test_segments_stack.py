"""Split renders on the whole stack, against real NATS and Redis: a per-frame effect over
a clip longer than ``L1_SEGMENT_SECONDS`` is rendered part by part and joined, and the
run's record, progress, cancel, retry, failures and preview all speak in parts."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from l1.settings import Settings
from l1.wiring import run_worker
from tests.harness import EventTap, Harness, submit, upload, wait_for
from tests.media import make_clip, stream_summary
from tests.processes import with_test_effects

SEGMENT = 0.5  # seconds a part holds
FPS = 24

CHAIN = b"""
name: toned-soft
inputs: [{name: clip}]
nodes:
  - {id: src, type: SOURCE, config: {input: clip}}
  - {id: small, type: RESIZE, config: {width: 64, height: 48, mode: stretch}, inputs: [src]}
  - {id: toned, type: EFFECT, config: {effect: sepia}, inputs: [small]}
  - {id: soft, type: EFFECT, config: {effect: blur}, inputs: [toned]}
output: soft
"""


class SplitHarness(Harness):
    """The test deployment with ``slots`` render slots in its one worker."""

    def __init__(self, settings: Settings, *, slots: int) -> None:
        super().__init__(settings)
        self.slots = slots

    async def _work(self, stop: asyncio.Event) -> None:
        await run_worker(self.settings, concurrency=self.slots, stop=stop)


def splitting(settings: Settings) -> Settings:
    """``settings`` with parts of :data:`SEGMENT` seconds and the test-only effects."""
    tuned = with_test_effects(settings, max_deliver=2)
    return msgspec.structs.replace(tuned, segment_seconds=SEGMENT)


@contextlib.asynccontextmanager
async def deployed(settings: Settings, *, slots: int) -> AsyncIterator[SplitHarness]:
    harness = SplitHarness(splitting(settings), slots=slots)
    async with harness.running():
        yield harness


@pytest.fixture
async def l1s(settings: Settings) -> AsyncIterator[SplitHarness]:
    """A deployment that splits, with four render slots."""
    async with deployed(settings, slots=4) as harness:
        yield harness


@pytest.fixture
async def one_slot(settings: Settings) -> AsyncIterator[SplitHarness]:
    """A deployment that splits, with one render slot: parts go one after another."""
    async with deployed(settings, slots=1) as harness:
        yield harness


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A 2 s clip with sound: five parts (a short first one, the preview, then 0.5 s each)."""
    path = tmp_path_factory.mktemp("clips") / "clip.mp4"
    return make_clip(path, 2.0, 96, 64, FPS).read_bytes()


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A 3 s clip of larger frames: seven parts, one slot renders them one by one."""
    path = tmp_path_factory.mktemp("clips") / "long.mp4"
    return make_clip(path, 3.0, 480, 360, FPS).read_bytes()


async def read(l1: Harness, run_id: str) -> dict[str, Any]:
    """``GET /runs/{run_id}`` as it reads now."""
    response = await l1.http.get(f"/runs/{run_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def split_step(run: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The node id and parts of the run's one split step (a recipe of one effect names
    its step ``output``)."""
    ((node, parts),) = run["segments"].items()
    return node, parts


async def first_part_done(l1: Harness, run_id: str) -> list[dict[str, Any]] | None:
    """The parts of the run's split step once part 0 is rendered."""
    segments = (await read(l1, run_id))["segments"]
    parts: list[dict[str, Any]] = next(iter(segments.values()), [])
    return parts if parts and parts[0]["status"] == "completed" else None


async def output_summary(l1: Harness, content_hash: str, tmp_path: Path) -> dict[str, Any]:
    """What the item ``content_hash`` holds, decoded."""
    response = await l1.http.get(f"/cache/{content_hash}")
    assert response.status_code == 200, response.text
    path = tmp_path / f"{content_hash}.mp4"
    path.write_bytes(response.content)
    return stream_summary(path)


def of_kind(events: list[dict[str, Any]], kind: str, generation: int = 0) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == kind and e.get("generation", 0) == generation]


async def test_a_long_blur_is_rendered_in_parts_and_joined_whole(
    l1s: SplitHarness, clip: bytes, tmp_path: Path
) -> None:
    item = await upload(l1s.http, clip)
    assert l1s.settings.nats_url
    async with EventTap(l1s.settings.nats_url, "l1.runs.>") as tap:
        run_id = (await submit(l1s.http, "blur", [item]))["run_id"]
        seen = asyncio.create_task(_run_progress(l1s, run_id))
        run = await l1s.finished_run(run_id)
        events = [e for e in await tap.settled() if e["run_id"] == run_id]
    observed = await seen

    assert run["status"] == "completed", run
    node, parts = split_step(run)
    assert len(parts) >= 4  # a short first part (the preview), then parts of 0.5 s
    assert [p["index"] for p in parts] == list(range(len(parts)))
    assert {p["status"] for p in parts} == {"completed"}
    assert all(p["worker"] and p["output_hash"] for p in parts)
    assert sum(p["frames"] for p in parts) == 2 * FPS
    assert parts[0]["start"] == 0 and parts[-1]["end"] is None
    for before, after in itertools.pairwise(parts):
        assert before["end"] == pytest.approx(after["start"])
    joins = [s for s in run["steps"] if s["effect"] == "join"]
    assert [j["node_id"] for j in joins] == [node]
    summary = await output_summary(l1s, run["output_hash"], tmp_path)
    assert summary["frames"] == 2 * FPS
    assert summary["seconds"] == pytest.approx(2.0, abs=1 / FPS)
    assert summary["audio_codec"] == "aac"
    assert summary["audio_seconds"] == pytest.approx(2.0, abs=0.05)
    # Every part's progress rises, and so does the run's, counted in frames.
    by_node: dict[str, list[float]] = defaultdict(list)
    for event in of_kind(events, "progress"):
        by_node[event["node_id"]].append(event["percent"])
    assert {f"{node}~{p['index']}" for p in parts} <= set(by_node)
    for part, percents in by_node.items():
        assert percents == sorted(percents), (part, percents)
    assert observed == sorted(observed), observed
    assert observed and observed[-1] == 100


async def _run_progress(l1: Harness, run_id: str) -> list[float]:
    """The run's progress as ``GET /runs/{run_id}`` reads it, polled until it finishes."""
    seen: list[float] = []
    deadline = asyncio.get_running_loop().time() + 60
    while asyncio.get_running_loop().time() < deadline:
        run = await read(l1, run_id)
        if run["progress"] is not None and (not seen or seen[-1] != run["progress"]):
            seen.append(run["progress"])
        if run["status"] in ("completed", "failed", "cancelled"):
            return seen
        await asyncio.sleep(0.02)  # the next poll; the deadline bounds the wait
    raise AssertionError(f"run {run_id} did not finish within 60 s: progress {seen}")


async def test_a_chain_of_per_frame_steps_is_split_end_to_end_and_joined_once(
    l1s: SplitHarness, clip: bytes, tmp_path: Path
) -> None:
    registered = await l1s.http.post("/recipes", content=CHAIN)
    assert registered.status_code == 201, registered.text
    item = await upload(l1s.http, clip)

    body = {"recipe": "toned-soft", "inputs": {"clip": item}}
    accepted = await l1s.http.post("/runs", json=body)
    assert accepted.status_code == 202, accepted.text
    run = await l1s.finished_run(accepted.json()["run_id"])

    assert run["status"] == "completed", run
    segments = run["segments"]
    count = len(segments["soft"])
    assert count >= 4
    assert set(segments) == {"small", "toned", "soft"}
    for node, parts in segments.items():
        assert [p["index"] for p in parts] == list(range(count)), node
        assert {p["status"] for p in parts} == {"completed"}, node
    steps = {s["node_id"]: s for s in run["steps"]}
    assert [s["node_id"] for s in run["steps"] if s["effect"] == "join"] == ["soft"]
    assert "small" not in steps and "toned" not in steps  # only their parts
    for index in range(count):
        assert steps[f"small~{index}"]["inputs"] == ["src"]
        assert steps[f"toned~{index}"]["inputs"] == [f"small~{index}"]
        assert steps[f"soft~{index}"]["inputs"] == [f"toned~{index}"]
    assert steps["soft"]["inputs"][:count] == [f"soft~{i}" for i in range(count)]
    summary = await output_summary(l1s, run["output_hash"], tmp_path)
    assert (summary["width"], summary["height"], summary["frames"]) == (64, 48, 2 * FPS)
    assert summary["audio_seconds"] == pytest.approx(2.0, abs=0.05)


async def test_a_retried_run_renders_only_the_parts_not_done_before(
    one_slot: SplitHarness, long_clip: bytes
) -> None:
    l1 = one_slot
    item = await upload(l1.http, long_clip)
    assert l1.settings.nats_url
    async with EventTap(l1.settings.nats_url, "l1.runs.>") as tap:
        run_id = (await submit(l1.http, "blur", [item]))["run_id"]
        await wait_for(lambda: first_part_done(l1, run_id))
        cancelled = await l1.http.post(f"/runs/{run_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        node, stopped = split_step(await read(l1, run_id))
        done = {p["index"] for p in stopped if p["status"] == "completed"}
        assert 0 in done and len(done) < len(stopped)

        retried = await l1.http.post(f"/runs/{run_id}/retry")
        assert retried.status_code == 202, retried.text
        run = await l1.finished_run(run_id)
        events = [e for e in await tap.settled() if e["run_id"] == run_id]

    assert (run["status"], run["generation"]) == ("completed", 1), run
    parts = run["segments"][node]
    assert [p["status"] for p in parts if p["index"] in done] == ["cached"] * len(done)
    assert {p["status"] for p in parts if p["index"] not in done} == {"completed"}
    started = {e["node_id"] for e in of_kind(events, "started", generation=1)}
    assert not started & {f"{node}~{index}" for index in done}, started
    assert {f"{node}~{p['index']}" for p in parts if p["index"] not in done} <= started


async def test_a_cancel_stops_every_part(one_slot: SplitHarness, long_clip: bytes) -> None:
    l1 = one_slot
    item = await upload(l1.http, long_clip)
    assert l1.settings.nats_url
    async with EventTap(l1.settings.nats_url, "l1.runs.>") as tap:
        run_id = (await submit(l1.http, "blur", [item]))["run_id"]
        # Cancelled while part 1 renders (or has just finished: the next one renders).
        await tap.until(
            lambda events: any(
                e["event"] == "started" and str(e.get("node_id")).endswith("~1") for e in events
            )
        )
        cancelled = await l1.http.post(f"/runs/{run_id}/cancel")
        assert cancelled.json()["status"] == "cancelled", cancelled.text
        stopped = await read(l1, run_id)

        # The one slot is free again: a run sent after the cancel is rendered.
        other = await submit(l1.http, "invert", [item])
        assert (await l1.finished_run(other["run_id"]))["status"] == "completed"
        events = await tap.settled()

    mine = [e for e in events if e["run_id"] == run_id]
    after = mine[[e["event"] for e in mine].index("cancelled") + 1 :]
    assert not [e for e in after if e["event"] in ("completed", "split")], after
    assert not [e for e in after if e.get("output_hash")], after  # no part finished later
    final = await read(l1, run_id)
    assert final["status"] == "cancelled"
    assert final["segments"] == stopped["segments"]
    _, parts = split_step(final)
    assert not [p for p in parts if p["index"] > 1 and p["output_hash"]]


async def test_a_failing_part_fails_the_run_naming_it_and_its_time_range(
    l1s: SplitHarness, clip: bytes
) -> None:
    item = await upload(l1s.http, clip)

    run = await l1s.finished_run((await submit(l1s.http, "fragile", [item]))["run_id"])

    assert run["status"] == "failed", run
    error = run["error"]
    _, parts = split_step(run)
    second = parts[1]
    assert second["status"] != "completed"
    assert "fragile: part 1 never renders" in error, error
    # Numbered from 1 for people, with its time range in the clip.
    span = f"segment 2 of {len(parts)} ({second['start']:.1f}-{second['end']:.1f} s)"
    assert span in error, error


async def test_the_preview_is_the_first_part_before_the_run_completes(
    one_slot: SplitHarness, long_clip: bytes, tmp_path: Path
) -> None:
    l1 = one_slot
    item = await upload(l1.http, long_clip)
    await l1.worker.stop()
    run_id = (await submit(l1.http, "blur", [item]))["run_id"]
    assert (await l1.http.get(f"/runs/{run_id}/preview")).status_code == 404
    l1.worker.start()

    parts = await wait_for(lambda: first_part_done(l1, run_id))
    await l1.worker.stop()  # nothing more is rendered until it is back
    unfinished = await read(l1, run_id)
    preview = await l1.http.get(f"/runs/{run_id}/preview")

    assert unfinished["status"] not in ("completed", "failed"), unfinished
    assert preview.status_code == 200, preview.text
    assert preview.headers["etag"] == f'"{parts[0]["output_hash"]}"'
    path = tmp_path / "preview.mp4"
    path.write_bytes(preview.content)
    assert stream_summary(path)["frames"] == parts[0]["frames"]

    l1.worker.start()
    run = await l1.finished_run(run_id)
    assert run["status"] == "completed", run
    whole = await l1.http.get(f"/runs/{run_id}/preview")
    assert whole.headers["etag"] == f'"{run["output_hash"]}"'
