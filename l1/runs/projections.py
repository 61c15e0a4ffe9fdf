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
    RunStarted,
    RunSubmitted,
)
from l1.schemas import Run, RunStatus, StepState

__all__ = [
    "apply_cancelled",
    "apply_completed",
    "apply_failed",
    "apply_progress",
    "apply_started",
    "apply_submitted",
    "merge_dispatched",
]


def _stale(run: Run | None, event: RunStarted | RunProgress | RunCompleted | RunFailed) -> bool:
    return run is None or event.generation < run.generation


def apply_submitted(run: Run | None, submitted: RunSubmitted | Run) -> Run | None:
    """The run was accepted, or accepted again by a retry (a later generation)."""
    new = submitted.run if isinstance(submitted, RunSubmitted) else submitted
    if run is None or new.generation > run.generation:
        return new
    return None


def apply_started(run: Run | None, event: RunStarted) -> Run | None:
    """A worker took the run; a finished run stays as it finished."""
    if run is None or _stale(run, event) or run.status.terminal:
        return None
    return replace(
        run,
        status=RunStatus.RUNNING,
        started_at=run.started_at or event.at,
        attempts=max(run.attempts, event.attempt),
        worker=event.worker if event.attempt >= run.attempts else run.worker,
    )


def apply_progress(run: Run | None, event: RunProgress) -> Run | None:
    """A step reported progress or finished; only an unfinished run shows it."""
    if run is None or _stale(run, event) or run.status.terminal:
        return None
    steps = run.steps
    if event.output_hash and event.node_id:
        steps = [_finish(s, event.node_id, event.output_hash) for s in steps]
    total = max(len(steps), 1)
    done = sum(s.done for s in steps)
    current = 0.0 if event.output_hash else event.percent / 100
    percent = round(min((done + current) / total * 100, 100.0), 1)
    return replace(run, steps=steps, progress=max(run.progress or 0.0, percent))


def merge_dispatched(run: Run | None, prepared: Run) -> Run | None:
    """Keep the steps the dispatcher moved on, without undoing anything newer."""
    if run is None or run.generation != prepared.generation or run.status.terminal:
        return None
    steps = [
        new if old.status == "pending" and new.status != "pending" else old
        for old, new in zip(run.steps, prepared.steps, strict=True)
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
