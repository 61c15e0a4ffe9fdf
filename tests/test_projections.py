"""How lifecycle events change a run record: the pure projections, without servers.

Every projection is idempotent (an event applied twice gives what once gives) and keeps
a finished run finished, whatever order events arrive in."""

from __future__ import annotations

import itertools
from typing import Any

import msgspec
import pytest

from l1.events.schemas import (
    RunCancelled,
    RunCompleted,
    RunEvent,
    RunFailed,
    RunProgress,
    RunStarted,
    RunSubmitted,
)
from l1.runs import projections
from l1.schemas import (
    Infrastructure,
    InputRef,
    NamedHash,
    Provenance,
    RenderRequest,
    Run,
    RunStatus,
    StepState,
)

RUN_ID = "1" * 64
INPUT = "2" * 64
MIDDLE = "3" * 64
OUTPUT = "4" * 64
T0 = "2026-11-23T10:00:00.000000Z"
T1 = "2026-11-23T10:00:01.000000Z"
T2 = "2026-11-23T10:00:02.000000Z"


def run(**changes: Any) -> Run:
    base = Run(
        run_id=RUN_ID,
        recipe="two-steps",
        recipe_hash="5" * 64,
        inputs=[InputRef(name="cat", content_hash=INPUT)],
        output_name="out",
        created_at=T0,
        bindings={"src": INPUT},
        steps=[
            StepState(node_id="a", cache_id="a" * 64, effect="blur", effect_hash="6" * 64,
                      inputs=["src"], status="dispatched"),
            StepState(node_id="b", cache_id="b" * 64, effect="invert", effect_hash="7" * 64,
                      inputs=["a"]),
        ],
    )  # fmt: skip
    return msgspec.structs.replace(base, **changes)


def request(node: str = "b", *, generation: int = 0) -> RenderRequest:
    return RenderRequest(
        run_id=RUN_ID,
        recipe="two-steps",
        recipe_hash="5" * 64,
        inputs=[],
        output_name="out",
        requested_by="test",
        submitted_at=T0,
        generation=generation,
        node_id=node,
        effect="invert",
        effect_hash="7" * 64,
        final=node == "b",
    )


def provenance() -> Provenance:
    thing = NamedHash(name="x", content_hash="8" * 64)
    return Provenance(
        task_id="task",
        run_id=RUN_ID,
        rendered_at=T2,
        rendered_by="@tester@l1.test",
        output=NamedHash(name="out", content_hash=OUTPUT),
        inputs=[NamedHash(name="cat", content_hash=INPUT)],
        effects=[thing],
        infrastructure=Infrastructure(software=thing, hardware=thing),
    )


def started(*, generation: int = 0, attempt: int = 1, worker: str = "w") -> RunStarted:
    event = RunStarted.of(request(generation=generation), worker=worker, attempt=attempt)
    return msgspec.structs.replace(event, at=T1)


def completed(*, generation: int = 0) -> RunCompleted:
    event = RunCompleted.of(request(generation=generation), provenance=provenance())
    return msgspec.structs.replace(event, at=T2)


def step_done() -> RunProgress:
    return RunProgress.step_done(request("a"), output_hash=MIDDLE)


def apply(current: Run | None, event: RunEvent) -> Run | None:
    """The run after ``event``; as it was when the event changes nothing."""
    match event:
        case RunSubmitted():
            changed = projections.apply_submitted(current, event)
        case RunStarted():
            changed = projections.apply_started(current, event)
        case RunProgress():
            changed = projections.apply_progress(current, event)
        case RunCompleted():
            changed = projections.apply_completed(current, event)
        case RunFailed():
            changed = projections.apply_failed(current, event)
        case RunCancelled():
            changed = projections.apply_cancelled(current, event)
        case _:
            raise AssertionError(event)
    return current if changed is None else changed


def test_started_marks_the_run_running_once() -> None:
    once = apply(run(), started())
    assert once is not None and once.status is RunStatus.RUNNING
    assert once.started_at == T1 and once.attempts == 1
    assert projections.apply_started(once, started()) in (None, once)


def test_the_run_names_the_worker_of_its_latest_attempt() -> None:
    first = apply(run(), started(worker="host-a"))
    again = apply(first, started(attempt=2, worker="host-b"))
    late = apply(again, started(attempt=1, worker="host-a"))  # redelivered out of order
    assert first is not None and first.worker == "host-a"
    assert again is not None and again.worker == "host-b"
    assert late is not None and late.worker == "host-b"
    quick = RunCompleted.of(request(), provenance=provenance(), worker="host-c")
    done = apply(run(), quick)  # a quick render sends no "started"
    assert done is not None and done.worker == "host-c"


def test_a_finished_step_fills_its_output_and_moves_progress() -> None:
    after = apply(run(), step_done())
    assert after is not None
    assert after.steps[0].status == "completed" and after.steps[0].output_hash == MIDDLE
    assert after.progress == 50.0
    assert apply(after, step_done()) == after


def test_completed_holds_output_provenance_and_times() -> None:
    done = apply(apply(run(), started()), completed())
    assert done is not None and done.status is RunStatus.COMPLETED
    assert (done.output_hash, done.completed_at, done.progress) == (OUTPUT, T2, 100.0)
    assert done.provenance == provenance()
    assert done.steps[-1].output_hash == OUTPUT


@pytest.mark.parametrize("late", [started(), started(attempt=3), step_done()])
def test_a_late_event_never_reopens_a_completed_run(late: RunEvent) -> None:
    done = apply(run(), completed())
    after = apply(done, late)
    assert done is not None and after is not None
    assert after.status is RunStatus.COMPLETED
    assert (after.output_hash, after.completed_at, after.steps) == (
        done.output_hash,
        done.completed_at,
        done.steps,
    )


def test_events_of_an_earlier_generation_change_nothing() -> None:
    retried = run(generation=1)
    for stale in (started(generation=0), completed(generation=0)):
        assert apply(retried, stale) == retried


def test_the_first_terminal_status_wins() -> None:
    cancelled = apply(run(), RunCancelled.of(run()))
    assert cancelled is not None and cancelled.status is RunStatus.CANCELLED
    assert apply(cancelled, completed()) == cancelled
    failed = RunFailed.of(request(), error="boom", attempt=2)
    assert apply(cancelled, failed) == cancelled


def test_any_order_of_the_same_events_ends_completed() -> None:
    events: list[RunEvent] = [started(), step_done(), completed()]
    results = set()
    for order in itertools.permutations(events):
        current: Run | None = run()
        for event in order:
            current = apply(current, event)
        assert current is not None and current.status is RunStatus.COMPLETED
        results.add(current.output_hash)
    assert results == {OUTPUT}


def test_submitted_only_ever_moves_to_a_later_generation() -> None:
    first = run()
    assert projections.apply_submitted(None, RunSubmitted.of(first)) == first
    assert projections.apply_submitted(first, RunSubmitted.of(first)) is None
    again = run(generation=1)
    assert projections.apply_submitted(first, RunSubmitted.of(again)) == again


def test_merging_dispatched_steps_keeps_newer_progress() -> None:
    current = apply(run(), step_done())
    assert current is not None
    prepared = run(steps=[
        msgspec.structs.replace(run().steps[0], status="dispatched"),
        msgspec.structs.replace(run().steps[1], status="dispatched"),
    ])  # fmt: skip
    merged = projections.merge_dispatched(current, prepared)
    assert merged is not None
    assert merged.steps[0].status == "completed"  # not undone by the older view
    assert merged.steps[1].status == "dispatched"
    assert projections.merge_dispatched(apply(current, completed()), prepared) is None


def test_event_ids_name_one_happening() -> None:
    assert started(attempt=1).event_id != started(attempt=2).event_id
    assert started(generation=0).event_id != started(generation=1).event_id
    assert completed().event_id == completed().event_id
    resubmitted = msgspec.structs.replace(run(), created_at=T1)
    assert RunSubmitted.of(run()).event_id != RunSubmitted.of(resubmitted).event_id
