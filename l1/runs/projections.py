"""How each lifecycle event changes a run record: pure functions, easy to test.

Each returns the new run, or None when the event changes nothing. A lower status
never overwrites a higher one, so a late ``started`` cannot undo a ``completed``,
and an event applied twice gives the same record as once.
"""

from __future__ import annotations

from msgspec.structs import replace

from l1.events.schemas import (
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunProgress,
    RunSplit,
    RunStarted,
    RunSubmitted,
)
from l1.runs import segments
from l1.schemas import Run, RunStatus, StepState

__all__ = [
    "apply_cancelled",
    "apply_completed",
    "apply_failed",
    "apply_progress",
    "apply_split",
    "apply_started",
    "apply_submitted",
    "merge_dispatched",
]


def _stale(
    run: Run | None, event: RunStarted | RunProgress | RunSplit | RunCompleted | RunFailed
) -> bool:
    return run is None or event.generation < run.generation


def apply_submitted(run: Run | None, submitted: RunSubmitted | Run) -> Run | None:
    """The run was accepted, or accepted again by a retry (a later generation)."""
    new = submitted.run if isinstance(submitted, RunSubmitted) else submitted
    if run is None or new.generation > run.generation:
        return new
    return None


def apply_started(run: Run | None, event: RunStarted) -> Run | None:
    """A worker took one of the run's steps; a finished run stays as it finished."""
    if run is None or _stale(run, event) or run.status.terminal:
        return None
    return replace(
        run,
        status=RunStatus.RUNNING,
        started_at=run.started_at or event.at,
        attempts=max(run.attempts, event.attempt),
        worker=event.worker if event.attempt >= run.attempts else run.worker,
        steps=[_started(step, event) for step in run.steps],
    )


def _started(step: StepState, event: RunStarted) -> StepState:
    if step.node_id != event.node_id or event.attempt < step.attempts:
        return step
    return replace(step, worker=event.worker, attempts=event.attempt)


def apply_split(run: Run | None, event: RunSplit) -> Run | None:
    """A worker split a step by time: its parts and join take its place."""
    if run is None or _stale(run, event) or run.status.terminal:
        return None
    return segments.split(run, event.node_id, event.plan, event.join_hash)


def apply_progress(run: Run | None, event: RunProgress) -> Run | None:
    """A step reported progress or finished; only an unfinished run shows it."""
    if run is None or _stale(run, event) or run.status.terminal:
        return None
    steps = run.steps
    if event.output_hash and event.node_id:
        steps = [_finish(s, event.node_id, event.output_hash) for s in steps]
    fraction = segments.frames_done(steps, event.node_id, event.percent)
    if fraction is None:  # nothing split: each step counts the same
        total = max(len(steps), 1)
        done = sum(s.done for s in steps)
        current = 0.0 if event.output_hash else event.percent / 100
        fraction = (done + current) / total
    percent = round(min(fraction * 100, 100.0), 1)
    return replace(run, steps=steps, progress=max(run.progress or 0.0, percent))


def merge_dispatched(run: Run | None, prepared: Run) -> Run | None:
    """Keep the steps the dispatcher moved on, without undoing anything newer (a step
    split meanwhile is left as its split made it)."""
    if run is None or run.generation != prepared.generation or run.status.terminal:
        return None
    moved = {step.node_id: step for step in prepared.steps if step.status != "pending"}
    steps = [
        moved[old.node_id]
        if old.status == "pending"
        and old.node_id in moved
        and moved[old.node_id].effect == old.effect
        else old
        for old in run.steps
    ]
    return replace(run, steps=steps)


def _finish(step: StepState, node_id: str, output_hash: str) -> StepState:
    if step.node_id != node_id or step.done:
        return step
    return replace(step, status="completed", output_hash=output_hash)


def apply_completed(run: Run | None, event: RunCompleted) -> Run | None:
    """The output is stored."""
    if run is None or _stale(run, event) or run.status.terminal:
        return None
    steps = [*run.steps[:-1], *(_finish(s, s.node_id, event.output_hash) for s in run.steps[-1:])]
    return replace(
        run,
        status=RunStatus.COMPLETED,
        steps=steps,
        started_at=run.started_at or event.started_at or event.at,
        attempts=max(run.attempts, event.attempt),
        worker=event.worker or run.worker,
        completed_at=event.at,
        output_hash=event.output_hash,
        provenance=event.provenance,
        progress=100.0,
        error=None,
    )


def apply_failed(run: Run | None, event: RunFailed) -> Run | None:
    """The run cannot succeed."""
    if run is None or _stale(run, event) or run.status.terminal:
        return None
    return replace(
        run,
        status=RunStatus.FAILED,
        completed_at=event.at,
        error=event.error,
        attempts=max(run.attempts, event.attempt),
    )


def apply_cancelled(run: Run | None, event: RunCancelled) -> Run | None:
    """The run was asked to stop before it finished."""
    if run is None or event.generation < run.generation or run.status.terminal:
        return None
    return replace(run, status=RunStatus.CANCELLED, completed_at=event.at, error=event.reason)
