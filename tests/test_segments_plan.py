"""A step split by time, as the run records it: parts in place of the step (and of the
per-frame steps chained after it), one join, and progress counted in frames."""

from __future__ import annotations

from typing import Any

import pytest
from msgspec.structs import replace

from l1.events.schemas import RunProgress, RunSplit, RunStarted
from l1.runs import projections
from l1.runs.scheduler import Scheduler
from l1.runs.segments import JOIN, frames_done, part_id, split
from l1.schemas import Run, SegmentPlan, SegmentSpan, StepState

SOURCE = "a" * 64
JOIN_HASH = "f" * 64


def _step(node: str, inputs: list[str], *, effect: str = "blur", **params: Any) -> StepState:
    return StepState(
        node_id=node,
        cache_id=node * 4,
        effect=effect,
        effect_hash="e" * 64,
        params=params,
        inputs=inputs,
        segmentable=effect != "mux",
    )


def _run(*steps: StepState) -> Run:
    return Run(
        run_id="r" * 64,
        recipe="chain",
        recipe_hash="c" * 64,
        inputs=[],
        output_name="out",
        created_at="2026-12-07T00:00:00Z",
        bindings={"src": SOURCE},
        steps=list(steps),
    )


def _plan(*frames: int, fmt: str = "mp4", codec: str = "h264") -> SegmentPlan:
    spans, first = [], 0
    for index, count in enumerate(frames):
        end = None if index == len(frames) - 1 else (first + count) / 30
        spans.append(
            SegmentSpan(
                of_node="",
                index=index,
                count=len(frames),
                start=first / 30,
                end=end,
                first_frame=first,
                frames=count,
            )
        )
        first += count
    return SegmentPlan(format=fmt, codec=codec, frames=first, segments=spans)


def test_a_step_becomes_its_parts_and_a_join_under_its_own_id() -> None:
    run = _run(_step("blur", ["src"], radius=3))
    after = split(run, "blur", _plan(75, 300, 125), JOIN_HASH)
    assert after is not None
    ids = [s.node_id for s in after.steps]
    assert ids == ["blur~0", "blur~1", "blur~2", "blur"]
    join = after.steps[-1]
    assert (join.effect, join.effect_hash, join.cache_id) == (JOIN, JOIN_HASH, "blur" * 4)
    assert join.inputs == ["blur~0", "blur~1", "blur~2", "src"]
    assert join.params["encoding"] == {"format": "mp4", "codec": "h264"}
    first = after.steps[0]
    assert first.inputs == ["src"] and first.params["radius"] == 3
    assert first.segment is not None and first.segment.of_node == "blur"
    assert first.segment.from_source and first.segment.frames == 75
    # Each part has a cache id of its own, the same whenever the same step is split alike.
    assert len({s.cache_id for s in after.steps}) == 4
    assert split(run, "blur", _plan(75, 300, 125), JOIN_HASH) == after


def test_a_chain_of_per_frame_steps_is_split_through_and_joined_once() -> None:
    run = _run(
        _step("small", ["src"], effect="resize", width=320),
        _step("toned", ["small"], effect="sepia", encoding={"crf": 18}),
        _step("soft", ["toned"], effect="blur", encoding={"format": "mkv"}),
    )
    after = split(run, "small", _plan(10, 20, fmt="webm", codec="vp9"), JOIN_HASH)
    assert after is not None
    by_id = {s.node_id: s for s in after.steps}
    assert [s.node_id for s in after.steps][-1] == "soft"
    assert by_id["toned~1"].inputs == ["small~1"] and by_id["soft~1"].inputs == ["toned~1"]
    assert not by_id["toned~1"].segment.from_source  # type: ignore[union-attr]
    # Formats follow the chain: sepia keeps the WebM, blur asked for Matroska.
    assert by_id["toned~0"].params["encoding"] == {"crf": 18, "format": "webm", "codec": "vp9"}
    assert by_id["soft~0"].params["encoding"] == {"format": "mkv", "codec": "h264"}
    assert by_id["soft"].inputs == ["soft~0", "soft~1", "src"]
    assert "small" not in by_id and "toned" not in by_id
    # Part 0 of every step comes first, so the preview is sent first.
    assert [s.node_id for s in after.steps][:3] == ["small~0", "toned~0", "soft~0"]


def test_the_chain_stops_at_a_step_with_two_users_or_an_animation() -> None:
    shared = _run(
        _step("a", ["src"]),
        _step("b", ["a"]),
        _step("c", ["a", "b"], effect="mux"),
    )
    after = split(shared, "a", _plan(10, 10), JOIN_HASH)
    assert after is not None
    assert [s.node_id for s in after.steps] == ["a~0", "a~1", "a", "b", "c"]
    gif = _run(_step("a", ["src"]), _step("b", ["a"], encoding={"format": "gif"}))
    after = split(gif, "a", _plan(10, 10), JOIN_HASH)
    assert after is not None
    assert [s.node_id for s in after.steps] == ["a~0", "a~1", "a", "b"]


def test_a_step_split_already_or_done_is_left_alone() -> None:
    run = _run(_step("blur", ["src"]))
    after = split(run, "blur", _plan(10, 10), JOIN_HASH)
    assert after is not None
    assert split(after, "blur", _plan(10, 10), JOIN_HASH) is None  # now a join
    done = _run(replace(_step("blur", ["src"]), status="completed", output_hash="b" * 64))
    assert split(done, "blur", _plan(10, 10), JOIN_HASH) is None


def test_progress_counts_frames_across_the_parts() -> None:
    run = split(_run(_step("blur", ["src"])), "blur", _plan(25, 75), JOIN_HASH)
    assert run is not None
    assert frames_done(run.steps, "blur~1", 50.0) == pytest.approx(37.5 / 100)
    first_done = [replace(s, status="completed") if s.node_id == "blur~0" else s for s in run.steps]
    assert frames_done(first_done, None, 0.0) == pytest.approx(0.25)
    assert frames_done(_run(_step("blur", ["src"])).steps, "blur", 50.0) is None


def _request(run: Run, node: str) -> Any:
    _, requests = Scheduler.plan(None, run, {})  # type: ignore[arg-type]
    return next(r for r in requests if r.node_id == node)


def test_the_run_records_a_split_and_each_part_s_worker() -> None:
    run = _run(_step("blur", ["src"]))
    request = _request(run, "blur")
    assert request.segmentable and request.segment is None
    event = RunSplit.of(request, plan=_plan(10, 20), join_hash=JOIN_HASH)
    after = projections.apply_split(run, event)
    assert after is not None and len(after.steps) == 3
    part = _request(after, "blur~1")
    assert part.segment is not None and part.segment.index == 1 and not part.final
    started = projections.apply_started(after, RunStarted.of(part, worker="w2", attempt=2))
    assert started is not None
    step = next(s for s in started.steps if s.node_id == "blur~1")
    assert (step.worker, step.attempts) == ("w2", 2)
    progress = projections.apply_progress(started, RunProgress.of(part, percent=50.0))
    assert progress is not None and progress.progress == pytest.approx(100 * 10 / 30, abs=0.1)


def test_a_dispatch_recorded_after_a_split_keeps_the_split() -> None:
    run = _run(_step("blur", ["src"]))
    prepared, _ = Scheduler.plan(None, run, {})  # type: ignore[arg-type]
    request = _request(run, "blur")
    split_run = projections.apply_split(
        prepared, RunSplit.of(request, plan=_plan(10, 20), join_hash=JOIN_HASH)
    )
    assert split_run is not None
    dispatched, _ = Scheduler.plan(None, split_run, {})  # type: ignore[arg-type]
    merged = projections.merge_dispatched(split_run, dispatched)
    assert merged is not None
    statuses = {s.node_id: s.status for s in merged.steps}
    assert statuses == {"blur~0": "dispatched", "blur~1": "dispatched", "blur": "pending"}
    # The dispatch of the step as it was before the split changes nothing now.
    assert projections.merge_dispatched(split_run, prepared) == split_run
    assert part_id("blur", 3) == "blur~3"
