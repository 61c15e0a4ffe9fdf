"""What the API, the run page and ``l1 run`` show of a render split by time: each split
step's parts (``segments`` of ``GET /runs/{id}``), the strip under its box, the preview
of the first part, and the parts' summary on the command line.

The runs are made by hand (the run model's own :func:`l1.runs.segments.split` turns a
resize → sepia chain into parts and a join) and stored straight in Redis, so that
every state of the parts can be shown without rendering a long video.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from msgspec.structs import replace
from redis.asyncio import Redis

from l1.api.services.runs import NO_PREVIEW, preview_hash, segment_views
from l1.api.ui.views import layout
from l1.runs.segments import split
from l1.runs.store import RunStore
from l1.schemas import (
    InputRef,
    Run,
    RunStatus,
    SegmentPlan,
    SegmentSpan,
    StepState,
    StepStatus,
)
from l1.settings import Settings
from tests.harness import Harness, upload
from tests.test_cli import l1_cli, succeeded

RUN_ID = "5e" * 32
CLIP = "c1" * 32
# Three parts: two of 10 s (300 frames at 30 fps) and the last 5 s (150 frames).
FRAMES = (300, 300, 150)


def split_run(run_id: str = RUN_ID) -> Run:
    """A running resize → sepia chain over a 25 s clip, split into three parts."""
    steps = [
        StepState(
            node_id="small",
            cache_id="1" * 64,
            effect="resize",
            effect_hash="e" * 64,
            inputs=["src"],
            segmentable=True,
        ),
        StepState(
            node_id="toned",
            cache_id="2" * 64,
            effect="sepia",
            effect_hash="f" * 64,
            inputs=["small"],
            segmentable=True,
        ),
    ]
    run = Run(
        run_id=run_id,
        recipe="sepia-clip",
        recipe_hash="b" * 64,
        inputs=[InputRef(name="clip", content_hash=CLIP)],
        output_name="toned clip",
        status=RunStatus.RUNNING,
        created_at="2026-12-07T10:00:00Z",
        started_at="2026-12-07T10:00:01Z",
        bindings={"src": CLIP},
        steps=steps,
    )
    spans, first = [], 0
    for index, frames in enumerate(FRAMES):
        end = None if index == len(FRAMES) - 1 else (index + 1) * 10.0
        spans.append(
            SegmentSpan(
                of_node="small",
                index=index,
                count=len(FRAMES),
                start=index * 10.0,
                end=end,
                first_frame=first,
                frames=frames,
            )
        )
        first += frames
    plan = SegmentPlan(format="mp4", codec="h264", frames=first, segments=spans)
    made = split(run, "small", plan, "d" * 64)
    assert made is not None
    return made


def with_part(
    run: Run, node_id: str, status: StepStatus, *, output: str | None = None, worker: str = "w1"
) -> Run:
    """``run`` with the step ``node_id`` in ``status``, rendered by ``worker``."""
    steps = [
        replace(s, status=status, output_hash=output, worker=worker, attempts=s.attempts + 1)
        if s.node_id == node_id
        else s
        for s in run.steps
    ]
    return replace(run, steps=steps)


async def store(settings: Settings, run: Run) -> None:
    """Put ``run`` in the run store as the API reads it."""
    redis = Redis.from_url(str(settings.redis_url))
    try:
        created = await RunStore(redis).create(run, holding=[])
        assert created.created
    finally:
        await redis.aclose()


async def change(settings: Settings, run_id: str, how: Callable[[Run], Run]) -> None:
    """Apply ``how`` to the stored run."""
    redis = Redis.from_url(str(settings.redis_url))
    try:
        updated = await RunStore(redis).update(run_id, lambda run: run and how(run))
        assert updated is not None
    finally:
        await redis.aclose()


def test_the_parts_of_each_split_step_are_listed_in_order_under_its_node() -> None:
    run = with_part(split_run(), "toned~1", "completed", output="a" * 64, worker="w2")
    run = replace(run, steps=list(reversed(run.steps)))  # order comes from the index
    views = segment_views(run.steps)
    assert set(views) == {"small", "toned"}
    toned = views["toned"]
    assert [v.index for v in toned] == [0, 1, 2]
    assert [(v.start, v.end, v.frames) for v in toned] == [
        (0.0, 10.0, 300),
        (10.0, 20.0, 300),
        (20.0, None, 150),
    ]
    assert [v.status for v in toned] == ["pending", "completed", "pending"]
    assert (toned[1].worker, toned[1].attempts, toned[1].output_hash) == ("w2", 1, "a" * 64)
    assert segment_views(run.steps[:1]) == {}  # the join alone is no part


def test_the_preview_is_the_last_steps_first_part_then_the_output() -> None:
    run = split_run()
    assert preview_hash(run) is None
    # The first part of an earlier step of the chain is no preview of the output.
    run = with_part(run, "small~0", "completed", output="a" * 64)
    assert preview_hash(run) is None
    run = with_part(run, "toned~0", "cached", output="b" * 64)
    assert preview_hash(run) == "b" * 64
    done = replace(run, status=RunStatus.COMPLETED, output_hash="c" * 64)
    assert preview_hash(done) == "c" * 64


def test_the_graph_draws_a_split_step_as_one_box_with_a_strip() -> None:
    run = with_part(split_run(), "small~0", "completed", output="a" * 64)
    run = with_part(run, "small~1", "dispatched")
    graph = layout(run)
    boxes = {box.node_id: box for box in graph.boxes}
    assert set(boxes) == {"src", "small", "toned"}
    assert [(a.node_id, b.node_id) for a, b in graph.edges] == [
        ("src", "small"),
        ("small", "toned"),
    ]
    small, toned = boxes["small"], boxes["toned"]
    assert (small.status, toned.status) == ("rendering", "pending")
    assert [c.status for c in small.cells] == ["completed", "dispatched", "pending"]
    assert small.parts_done == 1 and toned.parts_done == 0
    # Widths by frames, side by side, across the box.
    widths = [c.width for c in small.cells]
    assert widths[0] == widths[1] == 2 * widths[2]
    assert small.cells[1].x == small.cells[0].width
    assert abs(sum(widths) - 170) < 0.1
    assert small.cells[0].output_hash == "a" * 64 and small.cells[1].output_hash is None
    assert "w1" in small.cells[1].title and "10.00 s to 20.00 s" in small.cells[1].title
    assert not graph.preview
    # Every part and the join done: the box is done; a cancelled run's others read so.
    done = split_run()
    for step in done.steps:
        done = with_part(done, step.node_id, "completed", output="a" * 64)
    assert {b.status for b in layout(done).boxes if not b.source} == {"completed"}
    stopped = replace(with_part(split_run(), "toned~0", "completed"), status=RunStatus.CANCELLED)
    cells = next(b for b in layout(stopped).boxes if b.node_id == "toned").cells
    assert [c.status for c in cells] == ["completed", "cancelled", "cancelled"]


async def test_the_run_lists_its_parts_and_previews_the_first_once_rendered(
    l1: Harness,
) -> None:
    await store(l1.settings, split_run())
    shown = (await l1.http.get(f"/runs/{RUN_ID[:10]}")).json()
    assert [s["index"] for s in shown["segments"]["toned"]] == [0, 1, 2]
    assert shown["segments"]["small"][2] == {
        "index": 2,
        "start": 20.0,
        "end": None,
        "frames": 150,
        "status": "pending",
        "worker": None,
        "attempts": 0,
        "output_hash": None,
    }
    assert len(shown["steps"]) == 7  # the steps stay as they are: six parts and the join
    # Read another way (waiting, through the decoded run), the same parts.
    waited = (await l1.http.get(f"/runs/{RUN_ID}", params={"wait": 0.1})).json()
    assert waited["segments"] == shown["segments"] and waited["published"] == []
    # A run with no step split lists none.
    plain = replace(split_run("7a" * 32), steps=[])
    await store(l1.settings, plain)
    assert (await l1.http.get(f"/runs/{plain.run_id}")).json()["segments"] == {}
    early = await l1.http.get(f"/runs/{RUN_ID}/preview")
    assert early.status_code == 404
    assert early.json()["detail"] == NO_PREVIEW
    missing = await l1.http.get(f"/runs/{'9' * 64}/preview")
    assert missing.status_code == 404
    part = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8
    part_hash = await upload(l1.http, part)
    await change(
        l1.settings, RUN_ID, lambda run: with_part(run, "toned~0", "completed", output=part_hash)
    )
    preview = await l1.http.get(f"/runs/{RUN_ID}/preview")
    assert preview.status_code == 200, preview.text
    assert preview.content == part
    item = await l1.http.get(f"/cache/{part_hash}")
    assert preview.headers["etag"] == item.headers["etag"]
    assert preview.headers["content-type"] == item.headers["content-type"]
    ranged = await l1.http.get(f"/runs/{RUN_ID}/preview", headers={"Range": "bytes=4-11"})
    assert ranged.status_code == 206 and ranged.content == part[4:12]
    document = (await l1.http.get("/docs/openapi.json")).json()
    documented = document["paths"]["/runs/{run_id}/preview"]["get"]["responses"]
    assert {"200", "206", "404"} <= set(documented)


async def test_the_run_page_draws_the_strip_and_links_the_rendered_parts(l1: Harness) -> None:
    run = with_part(split_run(), "small~0", "completed", output="a" * 64, worker="host-a")
    run = with_part(run, "toned~0", "completed", output="b" * 64, worker="host-b")
    await store(l1.settings, with_part(run, "small~1", "dispatched", worker="host-b"))
    page = (await l1.http.get(f"/ui/runs/{RUN_ID}", headers={"Accept": "text/html"})).text
    for node in ("small", "toned"):
        strip = re.search(rf'<g class="strip" data-parts="{node}">(.*?)</g>', page, re.S)
        assert strip is not None, node
        assert len(re.findall(r'<rect class="part part-', strip.group(1))) == 3
    assert 'class="part part-dispatched" data-index="1"' in page
    assert '<a href="/cache/' + "a" * 64 + '">' in page
    assert "host-b" in page and "1/3 parts" in page
    assert 'data-node="small~0"' not in page  # parts are cells, not boxes
    assert f'href="/runs/{RUN_ID}/preview"' in page
    # The live refresh reads the same strip.
    detail = (await l1.http.get(f"/ui/runs/{RUN_ID}", params={"part": "detail"})).text
    assert 'data-parts="toned"' in detail


async def test_l1_run_sums_up_each_split_steps_parts(l1: Harness) -> None:
    run = with_part(split_run(), "toned~0", "completed", output="b" * 64, worker="host-b")
    await store(l1.settings, run)
    result = await l1_cli(l1.base_url, "run", RUN_ID[:12])
    assert succeeded(result).startswith("{")  # stdout stays the run's JSON
    lines = result.stderr.splitlines()
    at = lines.index("step toned: 1/3 parts done")
    assert re.fullmatch(r"\s+#0\s+0\.00-10\.00 s\s+completed\s+host-b", lines[at + 1])
    assert re.fullmatch(r"\s+#2\s+20\.00-end s\s+pending\s+-", lines[at + 3])
    assert "step small: 0/3 parts done" in lines
